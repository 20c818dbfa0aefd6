import { describe, expect, it } from 'vitest';
import { Inbox } from '../../src/client/inbox.js';
import type { FeedEvent } from '../../src/client/protocol.js';

const event = (seq: number, read = false): FeedEvent => ({
  seq,
  createTime: 1000 + seq,
  body: { seq },
  read,
  seen: read,
  archived: false,
});

describe('Inbox', () => {
  it('should add each seq once, in order, and only refresh read flags of known ones', () => {
    const inbox = new Inbox(100);
    const added: number[] = [];
    const reads: Array<[number[], boolean]> = [];
    inbox.on('event', (e) => added.push(e.seq));
    inbox.on('read', (c) => reads.push([c.seqs, c.read]));
    inbox.addEvents([event(2), event(1), event(3)]);
    inbox.addEvents([event(3, true), event(4)]);
    expect(added).toEqual([1, 2, 3, 4]);
    expect(reads).toEqual([[[3], true]]);
    expect(inbox.list().map((e) => e.seq)).toEqual([4, 3, 2, 1]);
    expect(inbox.lastSeq).toBe(4);
  });

  it('should keep heads growing and take the unread count only from the newest read version', () => {
    const inbox = new Inbox(100);
    const counts: number[] = [];
    inbox.on('unread', (n) => counts.push(n));
    inbox.applyState({ headSeq: 5, floorSeq: 1, unreadCount: 5, readVersion: 0 });
    inbox.applyState({ headSeq: 5, floorSeq: 1, unreadCount: 3, readVersion: 1 });
    // A late nudge from before the read must not bring the old count back.
    inbox.applyState({ headSeq: 4, floorSeq: 1, unreadCount: 4, readVersion: 0 });
    inbox.applyState({ headSeq: 6, floorSeq: 1, unreadCount: 4, readVersion: 1 });
    expect(inbox.head).toEqual({
      headSeq: 6,
      floorSeq: 1,
      unreadCount: 4,
      unseenCount: 0,
      archivedCount: 0,
      readVersion: 1,
    });
    expect(counts).toEqual([5, 3, 4]);
  });

  it('should evict the oldest events past its size and end iterators after what they hold', async () => {
    const inbox = new Inbox(3);
    const iterator = inbox.iterate();
    inbox.addEvents([1, 2, 3, 4, 5].map((s) => event(s)));
    expect(inbox.list().map((e) => e.seq)).toEqual([5, 4, 3]);
    inbox.endIterators();
    const got: number[] = [];
    for await (const e of iterator) got.push(e.seq);
    expect(got).toEqual([1, 2, 3, 4, 5]);
  });
});
