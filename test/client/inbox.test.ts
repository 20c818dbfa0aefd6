import { describe, expect, it } from 'vitest';
import { Inbox, matchesStatus, type FeedStatus } from '../../src/client/inbox.js';
import type { FeedEvent } from '../../src/client/protocol.js';

const event = (
  seq: number,
  read = false,
  flags: { seen?: boolean; archived?: boolean } = {},
): FeedEvent => ({
  seq,
  createTime: 1000 + seq,
  body: { seq },
  read,
  seen: flags.seen ?? read,
  archived: flags.archived ?? false,
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

  it('should list each status as the server filters it, newest first', () => {
    // Given one event in each combination that matters.
    const inbox = new Inbox(100);
    inbox.addEvents([
      event(1), // new
      event(2, false, { seen: true }), // seen, unread
      event(3, true), // read (so seen)
      event(4, false, { archived: true }), // archived, never seen
      event(5, true, { archived: true }), // archived and read
    ]);
    const seqs = (status?: FeedStatus) =>
      inbox.list(status === undefined ? undefined : { status }).map((e) => e.seq);
    // Then every view picks its own.
    expect(seqs()).toEqual([5, 4, 3, 2, 1]);
    expect(seqs('all')).toEqual([5, 4, 3, 2, 1]);
    expect(seqs('unarchived')).toEqual([3, 2, 1]);
    expect(seqs('unread')).toEqual([2, 1]);
    expect(seqs('unseen')).toEqual([1]);
    expect(seqs('archived')).toEqual([5, 4]);
    expect(matchesStatus(event(6, false, { archived: true }), 'unseen')).toBe(false);
  });

  it('should report each flag that changes as its own callback, and reading makes seen', () => {
    const inbox = new Inbox(100);
    const changes: Array<[string, number[], boolean]> = [];
    inbox.on('read', (c) => changes.push(['read', c.seqs, c.read]));
    inbox.on('seen', (c) => changes.push(['seen', c.seqs, c.seen]));
    inbox.on('archived', (c) => changes.push(['archived', c.seqs, c.archived]));
    inbox.addEvents([event(1), event(2), event(3)]);
    // When marks land locally.
    inbox.setFlag('seen', [3, 1, 99], true);
    inbox.setRead([1, 2], true);
    inbox.setFlag('archived', [2], true);
    inbox.setFlag('archived', [2], true);
    inbox.setRead([2], false);
    // Then only real flips are reported, ascending; 99 is not cached.
    expect(changes).toEqual([
      ['seen', [1, 3], true],
      ['read', [1, 2], true],
      ['seen', [2], true],
      ['archived', [2], true],
      ['read', [2], false],
    ]);
    expect(inbox.get(2)).toMatchObject({ read: false, seen: true, archived: true });
  });

  it('should take every flag of a known event from a later page, and sync a flag to a bitmap', () => {
    const inbox = new Inbox(100);
    const changes: Array<[string, number[], boolean]> = [];
    inbox.on('read', (c) => changes.push(['read', c.seqs, c.read]));
    inbox.on('seen', (c) => changes.push(['seen', c.seqs, c.seen]));
    inbox.on('archived', (c) => changes.push(['archived', c.seqs, c.archived]));
    inbox.addEvents([event(1), event(2), event(3), event(4)]);
    inbox.addEvents([event(2, false, { seen: true, archived: true })]);
    expect(changes).toEqual([
      ['seen', [2], true],
      ['archived', [2], true],
    ]);
    changes.length = 0;
    // The server says 1 and 3 are archived up to seq 3; 4 is past what it answered.
    inbox.syncFlag('archived', new Set([1, 3]), 3);
    expect(changes).toEqual([
      ['archived', [1, 3], true],
      ['archived', [2], false],
    ]);
    expect(inbox.list({ status: 'archived' }).map((e) => e.seq)).toEqual([3, 1]);
  });

  it('should report the unseen count and the counts only when they change', () => {
    const inbox = new Inbox(100);
    const unseen: number[] = [];
    const counts: unknown[] = [];
    inbox.on('unseen', (n) => unseen.push(n));
    inbox.on('counts', (c) => counts.push(c));
    const state = { headSeq: 3, floorSeq: 1, unreadCount: 3, unseenCount: 3, archivedCount: 0 };
    inbox.applyState({ ...state, readVersion: 0 });
    inbox.applyState({ ...state, unseenCount: 0, readVersion: 1 });
    // The same counts again, and an archive that moves nothing but the archived count.
    inbox.applyState({ ...state, unseenCount: 0, readVersion: 1 });
    inbox.applyState({
      ...state,
      unreadCount: 2,
      unseenCount: 0,
      archivedCount: 1,
      readVersion: 2,
    });
    // A late nudge from before the seen mark must not bring the badge back.
    inbox.applyState({ ...state, readVersion: 0 });
    expect(unseen).toEqual([3, 0]);
    expect(counts).toEqual([
      { unreadCount: 3, unseenCount: 3, archivedCount: 0 },
      { unreadCount: 3, unseenCount: 0, archivedCount: 0 },
      { unreadCount: 2, unseenCount: 0, archivedCount: 1 },
    ]);
  });
});
