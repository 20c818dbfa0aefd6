import { unreadCount } from '../domain/read-bitmap.js';
import type { UserViews } from './user-view.js';

export interface UserStats {
  readonly headSeq: number;
  readonly floorSeq: number;
  readonly unreadCount: number;
  readonly readVersion: number;
}

/** Head, floor and unread count; the count comes from the bitmap's cardinality, not a scan. */
export async function getStats(views: UserViews, uid: number): Promise<UserStats> {
  const { state } = await views.open(uid);
  return {
    headSeq: state.headSeq,
    floorSeq: state.floorSeq,
    unreadCount: unreadCount(state.bitmap, state.floorSeq, state.headSeq),
    readVersion: state.readVersion,
  };
}
