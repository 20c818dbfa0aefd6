import type { Knex } from 'knex';
import type { FeedRow } from './feed-event.js';
import { readUserState, type StoredUserState } from './user-state.js';
import { typed } from '../store/database.js';

export type SeqOrder = 'asc' | 'desc';

/**
 * One user's feed as one query sees it: the state read once, and pages of the events it holds.
 * Events are immutable once delivered, so pages read later agree with the state.
 */
export interface UserView {
  readonly state: StoredUserState;
  /** Up to `limit` events with seqs in [lo, hi], `order` by seq; lo ≥ floor, hi ≤ head. */
  page(lo: number, hi: number, order: SeqOrder, limit: number): Promise<readonly FeedRow[]>;
}

/** Where queries get their views: the store itself, or a read cache in front of it. */
export interface UserViews {
  open(uid: number): Promise<UserView>;
}

export function readPage(
  db: Knex,
  uid: number,
  partition: number,
  range: { lo: number; hi: number; order: SeqOrder; limit: number },
): Promise<FeedRow[]> {
  return typed<FeedRow[]>(
    db('user_events as ue')
      .join('events as e', (on) =>
        on.on('e.event_id', 'ue.event_id').andOnVal('e.log_partition', partition),
      )
      .where('ue.uid', uid)
      .andWhereBetween('ue.seq', [range.lo, range.hi])
      .orderBy('ue.seq', range.order)
      .limit(range.limit)
      .select('ue.seq as seq', 'e.create_time as create_time', 'e.body as body'),
  );
}

/** Views straight from the projected tables: two statements per query. */
export class StoreUserViews implements UserViews {
  constructor(private readonly db: Knex) {}

  async open(uid: number): Promise<UserView> {
    const state = await readUserState(this.db, uid);
    return {
      state,
      page: (lo, hi, order, limit) =>
        readPage(this.db, uid, state.partition, { lo, hi, order, limit }),
    };
  }
}
