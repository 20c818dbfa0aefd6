import type { Knex } from 'knex';
import { decodeInboxBitmaps, type InboxBitmaps } from '../domain/inbox-state.js';
import { decodeBitmap } from '../domain/read-bitmap.js';
import { typed } from '../store/database.js';

export interface StoredUserState {
  /** The commands partition that owns the user: its deliveries read that partition's events. */
  readonly partition: number;
  readonly headSeq: number;
  readonly floorSeq: number;
  readonly readVersion: number;
  /** Read, seen and archived seqs. */
  readonly bitmaps: InboxBitmaps;
}

function emptyBitmaps(): InboxBitmaps {
  return { read: decodeBitmap(null), seen: decodeBitmap(null), archived: decodeBitmap(null) };
}

/** A user's head, floor and state bitmaps; a user with no events has head 0 and floor 1. */
export async function readUserState(db: Knex, uid: number): Promise<StoredUserState> {
  const row = await typed<
    | {
        log_partition: number | null;
        head_seq: number;
        floor_seq: number;
        read_version: number | string;
        read_bitmap: Buffer | null;
        seen_bitmap: Buffer | null;
        archived_bitmap: Buffer | null;
      }
    | undefined
  >(
    db('user_states')
      .where({ uid })
      .first(
        'log_partition',
        'head_seq',
        'floor_seq',
        'read_version',
        'read_bitmap',
        'seen_bitmap',
        'archived_bitmap',
      ),
  );
  if (!row)
    return { partition: -1, headSeq: 0, floorSeq: 1, readVersion: 0, bitmaps: emptyBitmaps() };
  if (row.log_partition === null) {
    throw new Error(`user_states.log_partition of uid ${uid} is not set: run minipush migrate`);
  }
  return {
    partition: row.log_partition,
    headSeq: row.head_seq,
    floorSeq: row.floor_seq,
    readVersion: Number(row.read_version),
    bitmaps: decodeInboxBitmaps({
      read: row.read_bitmap,
      seen: row.seen_bitmap,
      archived: row.archived_bitmap,
    }),
  };
}
