import { describe, expect, it } from 'vitest';
import {
  INBOX_STATES,
  STATUS_FILTERS,
  inboxCounts,
  selectSeqs,
  type InboxBitmaps,
} from '../../src/domain/inbox-state.js';
import * as protocol from '../../src/protocol/websocket.js';
import { BitmapClass } from '../../src/domain/read-bitmap.js';

const bitmaps = (read: number[], seen: number[], archived: number[]): InboxBitmaps => ({
  read: new BitmapClass(read),
  seen: new BitmapClass(seen),
  archived: new BitmapClass(archived),
});

/** The rule, stated the slow way: which seqs of [lo, hi] a filter selects. */
function naive(b: InboxBitmaps, filter: string, lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let seq = lo; seq <= hi; seq++) {
    const archived = b.archived.has(seq);
    const keep =
      filter === 'all' ||
      (filter === 'unarchived' && !archived) ||
      (filter === 'archived' && archived) ||
      (filter === 'unread' && !archived && !b.read.has(seq)) ||
      (filter === 'unseen' && !archived && !b.seen.has(seq));
    if (keep) out.push(seq);
  }
  return out;
}

describe('inbox states', () => {
  it('should name the same states and filters as the wire protocol the client reads', () => {
    expect(protocol.INBOX_STATES).toEqual(INBOX_STATES);
    expect(protocol.STATUS_FILTERS).toEqual(STATUS_FILTERS);
  });

  it('should count over the stored seqs only, leaving archived events out of unread and unseen', () => {
    // Given seqs 1–10 stored from floor 3: read 1–5, seen 1–6, archived 5 and 9
    const b = bitmaps([1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6], [5, 9]);
    // Then unread are 6, 7, 8, 10; unseen 7, 8, 10; archived 5, 9
    expect(inboxCounts(b, 3, 10)).toEqual({ unreadCount: 4, unseenCount: 3, archivedCount: 2 });
    // And an empty feed counts nothing
    expect(inboxCounts(b, 11, 10)).toEqual({ unreadCount: 0, unseenCount: 0, archivedCount: 0 });
  });

  it.each(['all', 'unarchived', 'archived', 'unread', 'unseen'] as const)(
    'should select what the %s filter names, first `limit` in either order',
    (filter) => {
      // Given states scattered over seqs 1–40, with a single archived seq at a range's start
      const b = bitmaps(
        [1, 2, 3, 10, 11, 20, 30, 31],
        [1, 2, 3, 4, 10, 11, 12, 20, 30, 31, 39],
        [1, 12, 13, 31, 40],
      );
      for (const [lo, hi] of [
        [1, 1],
        [1, 40],
        [12, 13],
        [5, 9],
      ] as const) {
        const want = naive(b, filter, lo, hi);
        for (const limit of [1, 3, 100]) {
          const asc = selectSeqs(b, filter, { lo, hi, order: 'asc', limit });
          const desc = selectSeqs(b, filter, { lo, hi, order: 'desc', limit });
          // null means "the whole range as it is"
          const all = Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
          expect(asc ?? all.slice(0, limit)).toEqual(want.slice(0, limit));
          expect(desc ?? [...all].reverse().slice(0, limit)).toEqual(
            [...want].reverse().slice(0, limit),
          );
        }
      }
    },
  );
});
