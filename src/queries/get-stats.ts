import { inboxCounts, type InboxCounts } from '../domain/inbox-state.js';
import type { UserViews } from './user-view.js';

export interface UserStats extends InboxCounts {
  readonly headSeq: number;
  readonly floorSeq: number;
  readonly readVersion: number;
}

/** Head, floor and counts; the counts come from the bitmaps' cardinalities, not a scan. */
export async function getStats(views: UserViews, uid: number): Promise<UserStats> {
  const { state } = await views.open(uid);
  return {
    headSeq: state.headSeq,
    floorSeq: state.floorSeq,
    ...inboxCounts(state.bitmaps, state.floorSeq, state.headSeq),
    readVersion: state.readVersion,
  };
}
