import type { Knex } from 'knex';
import { decodeBitmap, type ReadBitmap } from '../domain/read-bitmap.js';
import { typed } from '../store/database.js';

export interface StoredUserState {
  readonly headSeq: number;
  readonly floorSeq: number;
  readonly readVersion: number;
  readonly bitmap: ReadBitmap;
}

/** A user's head, floor and read bitmap; a user with no events has head 0 and floor 1. */
export async function readUserState(db: Knex, uid: number): Promise<StoredUserState> {
  const row = await typed<
    | {
        head_seq: number;
        floor_seq: number;
        read_version: number | string;
        read_bitmap: Buffer | null;
      }
    | undefined
  >(db('user_states').where({ uid }).first('head_seq', 'floor_seq', 'read_version', 'read_bitmap'));
  if (!row) return { headSeq: 0, floorSeq: 1, readVersion: 0, bitmap: decodeBitmap(null) };
  return {
    headSeq: row.head_seq,
    floorSeq: row.floor_seq,
    readVersion: Number(row.read_version),
    bitmap: decodeBitmap(row.read_bitmap),
  };
}
