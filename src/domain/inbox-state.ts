import { BitmapClass, decodeBitmap, encodeBitmap, type ReadBitmap } from './read-bitmap.js';

/**
 * A user's per-event states, each a roaring bitmap of seqs: read, seen (mark read implies seen)
 * and archived. Only seqs in [floorSeq, headSeq] count; bitmaps may still hold expired seqs
 * until the next write trims them.
 */
export interface InboxBitmaps {
  readonly read: ReadBitmap;
  readonly seen: ReadBitmap;
  readonly archived: ReadBitmap;
}

/** A row's stored bitmaps (portable roaring, null for none), as `user_states` holds them. */
export interface StoredBitmaps {
  readonly read: Uint8Array | null;
  /** Seen but not read: the rest of the seen seqs are the read ones. */
  readonly seen: Uint8Array | null;
  readonly archived: Uint8Array | null;
}

/**
 * The bitmaps of a stored row. Mark read implies seen, so the row keeps only the seqs seen and
 * not read: a mostly read inbox stores next to nothing for its seen state.
 */
export function decodeInboxBitmaps(stored: StoredBitmaps): InboxBitmaps {
  const read = decodeBitmap(stored.read);
  const seen = decodeBitmap(stored.seen);
  seen.orInPlace(read);
  return { read, seen, archived: decodeBitmap(stored.archived) };
}

/** The stored form of one state's bitmap: null when empty, seen without the read seqs. */
export function encodeInboxBitmap(name: InboxStateName, bitmaps: InboxBitmaps): Buffer | null {
  const bitmap = name === 'seen' ? BitmapClass.andNot(bitmaps.seen, bitmaps.read) : bitmaps[name];
  return bitmap.isEmpty ? null : encodeBitmap(bitmap);
}

/**
 * The states and the filters, as the server names them. The wire protocol lists the same for
 * the client (src/protocol/websocket.ts may not import the domain, nor the domain the
 * protocol); test/domain/inbox-state.test.ts holds the two lists equal.
 */
export const INBOX_STATES = ['read', 'seen', 'archived'] as const;
export type InboxStateName = (typeof INBOX_STATES)[number];

/** Which events a diff or range fetch answers with. */
export const STATUS_FILTERS = ['unarchived', 'all', 'unread', 'unseen', 'archived'] as const;
export type StatusFilter = (typeof STATUS_FILTERS)[number];

/**
 * Counts over the stored seqs. Unread and unseen count the default view, so an archived event
 * is in neither count (it left the inbox, as in Knock's and Novu's feeds); archived counts it.
 */
export interface InboxCounts {
  readonly unreadCount: number;
  readonly unseenCount: number;
  readonly archivedCount: number;
}

/** The inbox's default view: everything not archived. */
export const DEFAULT_STATUS: StatusFilter = 'unarchived';

/** Seqs of `a` or `b` within [lo, hi]; `a ∩ b` is built only when both have some there. */
function unionInRange(a: ReadBitmap, b: ReadBitmap, lo: number, hi: number): number {
  const end = hi + 1;
  const inA = a.rangeCardinality(lo, end);
  const inB = b.rangeCardinality(lo, end);
  if (inA === 0 || inB === 0) return inA + inB;
  return inA + inB - BitmapClass.and(a, b).rangeCardinality(lo, end);
}

export function inboxCounts(bitmaps: InboxBitmaps, floorSeq: number, headSeq: number): InboxCounts {
  if (headSeq < floorSeq) return { unreadCount: 0, unseenCount: 0, archivedCount: 0 };
  const stored = headSeq - floorSeq + 1;
  return {
    unreadCount: stored - unionInRange(bitmaps.read, bitmaps.archived, floorSeq, headSeq),
    unseenCount: stored - unionInRange(bitmaps.seen, bitmaps.archived, floorSeq, headSeq),
    archivedCount: bitmaps.archived.rangeCardinality(floorSeq, headSeq + 1),
  };
}

export function sameCounts(a: InboxCounts, b: InboxCounts): boolean {
  return (
    a.unreadCount === b.unreadCount &&
    a.unseenCount === b.unseenCount &&
    a.archivedCount === b.archivedCount
  );
}

/**
 * The seqs in [lo, hi] that `filter` selects, first `limit` of them in `order`; null when that
 * is every seq of the range (the caller pages the range as it is, the usual case).
 */
export function selectSeqs(
  bitmaps: InboxBitmaps,
  filter: StatusFilter,
  range: { lo: number; hi: number; order: 'asc' | 'desc'; limit: number },
): readonly number[] | null {
  const { lo, hi, order, limit } = range;
  const end = hi + 1;
  let selected: ReadBitmap;
  switch (filter) {
    case 'all':
      return null;
    case 'unarchived':
      // Not intersectsWithRange: in roaring 2.7 it says {1} and [1, 2) do not intersect.
      if (bitmaps.archived.rangeCardinality(lo, end) === 0) return null;
      selected = BitmapClass.fromRange(lo, end);
      selected.andNotInPlace(bitmaps.archived);
      break;
    case 'unread':
    case 'unseen': {
      const done = filter === 'unread' ? bitmaps.read : bitmaps.seen;
      selected = BitmapClass.fromRange(lo, end);
      selected.andNotInPlace(done);
      selected.andNotInPlace(bitmaps.archived);
      break;
    }
    case 'archived':
      selected = BitmapClass.fromRange(lo, end);
      selected.andInPlace(bitmaps.archived);
      break;
    default: {
      const unreachable: never = filter;
      throw new Error(`unhandled status filter ${String(unreachable)}`);
    }
  }
  const size = selected.size;
  if (size === 0 || limit <= 0) return [];
  if (order === 'asc') return Array.from(selected.rangeUint32Array(0, Math.min(limit, size)));
  const count = Math.min(limit, size);
  return Array.from(selected.rangeUint32Array(size - count, count)).reverse();
}
