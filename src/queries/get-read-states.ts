import type { Knex } from 'knex';
import { encodeBitmap, sliceBitmap } from '../domain/read-bitmap.js';
import { encodeReadBlock, type ReadBlock } from '../domain/read-blocks.js';
import { readUserState } from './user-state.js';

export type ReadStatesFormat = 'roaring' | 'blocks';

export interface ReadStatesQuery {
  readonly uid: number;
  /** Highest seq wanted; the head when absent. */
  readonly upTo?: number;
  readonly format: ReadStatesFormat;
}

export type ReadStates =
  | { readonly headSeq: number; readonly floorSeq: number; readonly bitmap: string }
  | { readonly headSeq: number; readonly floorSeq: number; readonly blocks: ReadBlock[] };

/**
 * Which stored seqs in [floorSeq, upTo] are read: a base64 portable roaring bitmap, or the seed's
 * blocks for old clients (one block, since stored seqs are contiguous).
 */
export async function getReadStates(db: Knex, query: ReadStatesQuery): Promise<ReadStates> {
  const state = await readUserState(db, query.uid);
  const to = Math.min(query.upTo ?? state.headSeq, state.headSeq);
  if (query.format === 'blocks') {
    const block = encodeReadBlock(state.bitmap, state.floorSeq, to);
    return { headSeq: state.headSeq, floorSeq: state.floorSeq, blocks: block ? [block] : [] };
  }
  const slice = sliceBitmap(state.bitmap, state.floorSeq, to);
  return {
    headSeq: state.headSeq,
    floorSeq: state.floorSeq,
    bitmap: encodeBitmap(slice).toString('base64'),
  };
}
