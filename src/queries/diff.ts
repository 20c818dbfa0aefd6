import type { Knex } from 'knex';
import { toFeedEvent, type FeedPage, type FeedRow } from './feed-event.js';
import { readUserState } from './user-state.js';
import { typed } from '../store/database.js';

export interface DiffQuery {
  readonly uid: number;
  /** Last seq the client has; 0 for none. */
  readonly after: number;
  readonly limit: number;
}

/**
 * Events after the client's last seq, oldest first. When `after` is below the floor the events
 * between them expired: the answer says `reset` (like Telegram's "difference too long") and
 * starts at the floor instead of pretending nothing was missed.
 */
export async function diff(db: Knex, query: DiffQuery): Promise<FeedPage> {
  const state = await readUserState(db, query.uid);
  const reset = query.after < state.floorSeq - 1;
  const start = Math.max(query.after, state.floorSeq - 1);
  if (start >= state.headSeq) {
    return { headSeq: state.headSeq, floorSeq: state.floorSeq, events: [], more: false, reset };
  }
  const rows = await typed<FeedRow[]>(
    db('user_events as ue')
      .join('events as e', (on) =>
        on.on('e.event_id', 'ue.event_id').andOnVal('e.log_partition', state.partition),
      )
      .where('ue.uid', query.uid)
      .andWhere('ue.seq', '>', start)
      .orderBy('ue.seq', 'asc')
      .limit(query.limit + 1)
      .select('ue.seq as seq', 'e.create_time as create_time', 'e.body as body'),
  );
  const more = rows.length > query.limit;
  const events = rows.slice(0, query.limit).map((row) => toFeedEvent(row, state.bitmap));
  return { headSeq: state.headSeq, floorSeq: state.floorSeq, events, more, reset };
}
