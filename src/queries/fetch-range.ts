import { toFeedEvents, type FeedPage } from './feed-event.js';
import type { StatusFilter } from '../domain/inbox-state.js';
import { filteredPage, type UserViews } from './user-view.js';

export interface FetchRangeQuery {
  readonly uid: number;
  /** Lowest seq wanted, inclusive. */
  readonly from: number;
  /** Highest seq wanted, inclusive. */
  readonly to: number;
  readonly order: 'asc' | 'desc';
  /** At most this many events; `more` says the range holds others. */
  readonly limit: number;
  /** Which events: the default view (`unarchived`), `all`, `unread`, `unseen`, `archived`. */
  readonly status: StatusFilter;
}

/** Events with seqs in [from, to], newest or oldest first, like the seed's GetEvents. */
export async function fetchRange(views: UserViews, query: FetchRangeQuery): Promise<FeedPage> {
  const view = await views.open(query.uid);
  const { state } = view;
  const reset = query.from < state.floorSeq && query.to >= query.from;
  const lo = Math.max(query.from, state.floorSeq);
  const hi = Math.min(query.to, state.headSeq);
  if (hi < lo) {
    return { headSeq: state.headSeq, floorSeq: state.floorSeq, events: [], more: false, reset };
  }
  const rows = await filteredPage(view, query.status, {
    lo,
    hi,
    order: query.order,
    limit: query.limit + 1,
  });
  const more = rows.length > query.limit;
  const events = toFeedEvents(rows, query.limit, state.bitmaps);
  return { headSeq: state.headSeq, floorSeq: state.floorSeq, events, more, reset };
}
