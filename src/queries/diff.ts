import { toFeedEvents, type FeedPage } from './feed-event.js';
import type { StatusFilter } from '../domain/inbox-state.js';
import { filteredPage, type UserViews } from './user-view.js';

export interface DiffQuery {
  readonly uid: number;
  /** Last seq the client has; 0 for none. */
  readonly after: number;
  readonly limit: number;
  /** Which events: the default view (`unarchived`), `all`, `unread`, `unseen`, `archived`. */
  readonly status: StatusFilter;
}

/**
 * Events after the client's last seq, oldest first. When `after` is below the floor the events
 * between them expired: the answer says `reset` (like Telegram's "difference too long") and
 * starts at the floor instead of pretending nothing was missed.
 */
export async function diff(views: UserViews, query: DiffQuery): Promise<FeedPage> {
  const view = await views.open(query.uid);
  const { state } = view;
  const reset = query.after < state.floorSeq - 1;
  const start = Math.max(query.after, state.floorSeq - 1);
  if (start >= state.headSeq) {
    return { headSeq: state.headSeq, floorSeq: state.floorSeq, events: [], more: false, reset };
  }
  const rows = await filteredPage(view, query.status, {
    lo: start + 1,
    hi: state.headSeq,
    order: 'asc',
    limit: query.limit + 1,
  });
  const more = rows.length > query.limit;
  const events = toFeedEvents(rows, query.limit, state.bitmaps);
  return { headSeq: state.headSeq, floorSeq: state.floorSeq, events, more, reset };
}
