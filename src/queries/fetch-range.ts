import type { Knex } from 'knex';
import { toFeedEvent, type FeedPage, type FeedRow } from './feed-event.js';
import { readUserState } from './user-state.js';
import { typed } from '../store/database.js';

export interface FetchRangeQuery {
  readonly uid: number;
  /** Lowest seq wanted, inclusive. */
  readonly from: number;
  /** Highest seq wanted, inclusive. */
  readonly to: number;
  readonly order: 'asc' | 'desc';
  /** At most this many events; `more` says the range holds others. */
  readonly limit: number;
}

/** Events with seqs in [from, to], newest or oldest first, like the seed's GetEvents. */
export async function fetchRange(db: Knex, query: FetchRangeQuery): Promise<FeedPage> {
  const state = await readUserState(db, query.uid);
  const reset = query.from < state.floorSeq && query.to >= query.from;
  const lo = Math.max(query.from, state.floorSeq);
  const hi = Math.min(query.to, state.headSeq);
  if (hi < lo) {
    return { headSeq: state.headSeq, floorSeq: state.floorSeq, events: [], more: false, reset };
  }
  const rows = await typed<FeedRow[]>(
    db('user_events as ue')
      .join('events as e', (on) =>
        on.on('e.event_id', 'ue.event_id').andOnVal('e.log_partition', state.partition),
      )
      .where('ue.uid', query.uid)
      .andWhereBetween('ue.seq', [lo, hi])
      .orderBy('ue.seq', query.order)
      .limit(query.limit + 1)
      .select('ue.seq as seq', 'e.create_time as create_time', 'e.body as body'),
  );
  const more = rows.length > query.limit;
  const events = rows.slice(0, query.limit).map((row) => toFeedEvent(row, state.bitmap));
  return { headSeq: state.headSeq, floorSeq: state.floorSeq, events, more, reset };
}
