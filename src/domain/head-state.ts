import type { InboxCounts } from './inbox-state.js';

/**
 * A user's head as sessions are told it, and the rules that keep what a session hears from ever
 * going back: heads, floors and read versions only grow, and the counts belong to the newest
 * state.
 */
export interface HeadState extends InboxCounts {
  /** Highest seq (0 when the feed is empty). */
  readonly headSeq: number;
  /** Lowest seq still stored. */
  readonly floorSeq: number;
  /** Grows with every change of the read, seen or archived state. */
  readonly readVersion: number;
  /** Log time of the newest command behind this state, for publish → nudge latency. */
  readonly logTime?: number;
}

/**
 * What a projector announces on the heads stream after a commit, and what hubs nudge from: a
 * user's new head and read state.
 */
export interface HeadChange extends HeadState {
  readonly uid: number;
  /** W3C trace context of the newest command behind this change. */
  readonly traceparent?: string;
}

/**
 * A projector's word on the heads stream that every commit of commands `partition` below
 * `offset`, in the read model `epoch`, has been announced: a subscriber that has taken in every
 * record before this one knows every change those commits made. Read caches serve from memory
 * only as far as such positions reach (docs/architecture.md, "Read cache").
 */
export interface FeedPosition {
  readonly partition: number;
  readonly offset: number;
  /** The read model's identity; a rebuild or a new database makes a new one. */
  readonly epoch: string;
}

/** The two say the same to a client (log time aside). */
export function sameHead(a: HeadState, b: HeadState): boolean {
  return (
    a.headSeq === b.headSeq &&
    a.floorSeq === b.floorSeq &&
    a.unreadCount === b.unreadCount &&
    a.unseenCount === b.unseenCount &&
    a.archivedCount === b.archivedCount &&
    a.readVersion === b.readVersion
  );
}

/** `a` tells a client something `than` did not: a higher head, floor or read version. */
export function isNewer(a: HeadState, than: HeadState | null): boolean {
  if (!than) return true;
  return a.headSeq > than.headSeq || a.readVersion > than.readVersion || a.floorSeq > than.floorSeq;
}

/**
 * The state after both: the higher head, floor and read version, and the counts of the newer
 * state (of the higher head when the read versions tie).
 */
export function mergeHeads(a: HeadState | null, b: HeadState): HeadState {
  if (!a) return b;
  const latest =
    b.readVersion > a.readVersion || (b.readVersion === a.readVersion && b.headSeq >= a.headSeq)
      ? b
      : a;
  const logTime = b.logTime ?? a.logTime;
  return {
    headSeq: Math.max(a.headSeq, b.headSeq),
    floorSeq: Math.max(a.floorSeq, b.floorSeq),
    unreadCount: latest.unreadCount,
    unseenCount: latest.unseenCount,
    archivedCount: latest.archivedCount,
    readVersion: Math.max(a.readVersion, b.readVersion),
    ...(logTime !== undefined ? { logTime } : {}),
  };
}

/** Just the head fields of a change, as a session is told them. */
export function headStateOf(change: HeadState): HeadState {
  return {
    headSeq: change.headSeq,
    floorSeq: change.floorSeq,
    unreadCount: change.unreadCount,
    unseenCount: change.unseenCount,
    archivedCount: change.archivedCount,
    readVersion: change.readVersion,
    ...(change.logTime !== undefined ? { logTime: change.logTime } : {}),
  };
}
