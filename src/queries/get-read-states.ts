import { encodeBitmap, sliceBitmap } from '../domain/read-bitmap.js';
import { encodeCompact } from '../domain/read-compact.js';
import { encodeReadBlock, type ReadBlock } from '../domain/read-blocks.js';
import type { InboxStateName } from '../domain/inbox-state.js';
import type { UserViews } from './user-view.js';

export type ReadStatesFormat = 'roaring' | 'blocks' | 'compact';

export interface ReadStatesQuery {
  readonly uid: number;
  /** Highest seq wanted; the head when absent. */
  readonly upTo?: number;
  readonly format: ReadStatesFormat;
  /** Which state the bits say: read (default), seen or archived; 1 = in that state. */
  readonly state?: InboxStateName;
}

export type ReadStates =
  | { readonly headSeq: number; readonly floorSeq: number; readonly bitmap: string }
  | { readonly headSeq: number; readonly floorSeq: number; readonly blocks: ReadBlock[] }
  | { readonly headSeq: number; readonly floorSeq: number; readonly compact: string };

/**
 * Which stored seqs in [floorSeq, upTo] are read (or seen, or archived, as asked): a base64 portable roaring bitmap, the seed's
 * blocks for old clients (one block, since stored seqs are contiguous), or the `compact` format,
 * the smallest of several encodings for each answer (see read-compact.ts).
 */
export async function getReadStates(views: UserViews, query: ReadStatesQuery): Promise<ReadStates> {
  const { state } = await views.open(query.uid);
  const bitmap = state.bitmaps[query.state ?? 'read'];
  const to = Math.min(query.upTo ?? state.headSeq, state.headSeq);
  if (query.format === 'blocks') {
    const block = encodeReadBlock(bitmap, state.floorSeq, to);
    return { headSeq: state.headSeq, floorSeq: state.floorSeq, blocks: block ? [block] : [] };
  }
  if (query.format === 'compact') {
    return {
      headSeq: state.headSeq,
      floorSeq: state.floorSeq,
      compact: encodeCompact(bitmap, state.floorSeq, to).toString('base64'),
    };
  }
  const slice = sliceBitmap(bitmap, state.floorSeq, to);
  return {
    headSeq: state.headSeq,
    floorSeq: state.floorSeq,
    bitmap: encodeBitmap(slice).toString('base64'),
  };
}
