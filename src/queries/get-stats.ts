import type { Knex } from 'knex';
import { unreadCount } from '../domain/read-bitmap.js';
import { readUserState } from './user-state.js';

export interface UserStats {
  readonly headSeq: number;
  readonly floorSeq: number;
  readonly unreadCount: number;
  readonly readVersion: number;
}

/** Head, floor and unread count; the count comes from the bitmap's cardinality, not a scan. */
export async function getStats(db: Knex, uid: number): Promise<UserStats> {
  const state = await readUserState(db, uid);
  return {
    headSeq: state.headSeq,
    floorSeq: state.floorSeq,
    unreadCount: unreadCount(state.bitmap, state.floorSeq, state.headSeq),
    readVersion: state.readVersion,
  };
}
