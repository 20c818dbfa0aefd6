import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { HeadChange } from '../../src/domain/head-state.js';
import { Nudger } from '../../src/hubs/nudger.js';
import type { SharedMessage } from '../../src/hubs/shared-message.js';
import {
  SessionRegistry,
  type Session,
  type SessionSocket,
} from '../../src/hubs/session-registry.js';
import { fakeSession, quietSocket } from '../helpers/sessions.js';

/** A socket that keeps what it was sent. */
function fakeSocket(): SessionSocket & { sent: any[] } {
  const sent: any[] = [];
  return { ...quietSocket({ send: (data) => sent.push(JSON.parse(data.toString())) }), sent };
}

let nextId = 0;
function session(uid: number): Session & { socket: { sent: any[] } } {
  return fakeSession(`s${++nextId}`, uid, fakeSocket());
}

const change = (uid: number, headSeq: number, extra: Partial<HeadChange> = {}): HeadChange => ({
  uid,
  headSeq,
  floorSeq: 1,
  unreadCount: headSeq,
  unseenCount: extra.unreadCount ?? headSeq,
  archivedCount: 0,
  readVersion: 0,
  ...extra,
});

const hello = {
  headSeq: 0,
  floorSeq: 1,
  unreadCount: 0,
  unseenCount: 0,
  archivedCount: 0,
  readVersion: 0,
};

describe('Nudger', () => {
  let registry: SessionRegistry;
  let nudger: Nudger;
  const coalesced = vi.fn();

  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
    registry = new SessionRegistry(1024 * 1024);
    nudger = new Nudger({
      registry,
      windowMs: 50,
      now: () => Date.now(),
      observer: { onNudgeCoalesced: coalesced },
    });
    coalesced.mockClear();
  });

  afterEach(() => {
    nudger.close();
    vi.useRealTimers();
  });

  it('should nudge at once, then merge a burst into one nudge at the end of the window', () => {
    // Given a greeted session
    const s = session(1);
    registry.add(s);
    nudger.greeted(s, hello);
    // When five changes arrive within one window
    for (let seq = 1; seq <= 5; seq++) nudger.onChanges([change(1, seq)]);
    // Then the first is sent at once and the rest wait
    expect(s.socket.sent.map((m) => m.headSeq)).toEqual([1]);
    vi.advanceTimersByTime(49);
    expect(s.socket.sent).toHaveLength(1);
    // And once the window ends one nudge says the latest head
    vi.advanceTimersByTime(1);
    expect(s.socket.sent.map((m) => m.headSeq)).toEqual([1, 5]);
    expect(s.socket.sent[1]).toEqual({
      type: 'head',
      headSeq: 5,
      floorSeq: 1,
      unreadCount: 5,
      unseenCount: 5,
      archivedCount: 0,
      readVersion: 0,
    });
    expect(coalesced).toHaveBeenCalledTimes(3);
  });

  it('should never tell a session a head lower than one it was told', () => {
    const s = session(2);
    registry.add(s);
    nudger.greeted(s, { ...hello, headSeq: 10, unreadCount: 10, unseenCount: 10 });
    nudger.onChanges([change(2, 8)]);
    vi.advanceTimersByTime(100);
    nudger.onChanges([change(2, 9)]);
    expect(s.socket.sent).toEqual([]);
    nudger.onChanges([change(2, 11)]);
    vi.advanceTimersByTime(100);
    expect(s.socket.sent.map((m) => m.headSeq)).toEqual([11]);
  });

  it('should hold changes that arrive before hello and tell the newer state after it', () => {
    const s = session(3);
    registry.add(s);
    nudger.onChanges([change(3, 4)]);
    expect(s.socket.sent).toEqual([]);
    nudger.greeted(s, { ...hello, headSeq: 2, unreadCount: 2, unseenCount: 2 });
    expect(s.socket.sent.map((m) => m.headSeq)).toEqual([4]);
  });

  it('should give every session of a user the same message, and ignore users with none here', () => {
    const a = session(4);
    const b = session(4);
    for (const s of [a, b]) {
      registry.add(s);
      nudger.greeted(s, hello);
    }
    const around = vi.fn((_c: HeadChange, _n: number, nudge: () => boolean) => nudge());
    const traced = new Nudger({ registry, windowMs: 50, now: () => Date.now(), around });
    traced.onChanges([change(4, 1), change(99, 1)]);
    expect(a.socket.sent).toEqual(b.socket.sent);
    expect(a.socket.sent).toHaveLength(1);
    // Only the user with sessions here is handled, with its session count.
    expect(around).toHaveBeenCalledTimes(1);
    expect(around.mock.calls[0]![1]).toBe(2);
    expect(around.mock.results[0]!.value).toBe(true);
    traced.close();
  });

  it('should let a read change through within the window as the newest unread count', () => {
    const s = session(5);
    registry.add(s);
    nudger.greeted(s, hello);
    nudger.onChanges([change(5, 3)]);
    nudger.onChanges([
      change(5, 3, { unreadCount: 0, unseenCount: 0, archivedCount: 0, readVersion: 1 }),
    ]);
    vi.advanceTimersByTime(50);
    expect(s.socket.sent.at(-1)).toMatchObject({
      headSeq: 3,
      unreadCount: 0,
      unseenCount: 0,
      archivedCount: 0,
      readVersion: 1,
    });
  });

  it('should hand every session of a user one shared message and tell the observer once', () => {
    // Given three sessions of a user on a transport that takes shared messages
    const shared: SharedMessage[][] = [];
    const tabs = [session(6), session(6), session(6)].map((s, i) => {
      shared.push([]);
      const socket = { ...s.socket, sendShared: (m: SharedMessage) => shared[i]!.push(m) };
      const withShared = { ...s, socket };
      registry.add(withShared);
      nudger.greeted(withShared, hello);
      return withShared;
    });
    const sent = vi.fn();
    const observed = new Nudger({
      registry,
      windowMs: 50,
      now: () => Date.now(),
      observer: { onNudgesSent: sent },
    });
    // When the user's head changes
    observed.onChanges([change(6, 7, { logTime: Date.now() - 3 })]);
    // Then all three got the very same message, and its bytes say the new head
    expect(shared.map((list) => list.length)).toEqual([1, 1, 1]);
    expect(new Set(shared.flat()).size).toBe(1);
    expect(JSON.parse(shared[0]![0]!.bytes.toString())).toEqual({
      type: 'head',
      headSeq: 7,
      floorSeq: 1,
      unreadCount: 7,
      unseenCount: 7,
      archivedCount: 0,
      readVersion: 0,
    });
    expect(tabs.map((t) => t.told?.headSeq)).toEqual([7, 7, 7]);
    // And the observer heard of three nudges, with the latency from the log time, in one call
    expect(sent).toHaveBeenCalledTimes(1);
    expect(sent).toHaveBeenCalledWith(3, 3);
    observed.close();
  });

  it('should tell sessions told more than the change what they merge to, never less', () => {
    // Given one session told an older head, and one told a newer read state
    const behind = session(7);
    const read = session(7);
    for (const s of [behind, read]) registry.add(s);
    nudger.greeted(behind, {
      headSeq: 1,
      floorSeq: 1,
      unreadCount: 1,
      unseenCount: 1,
      archivedCount: 0,
      readVersion: 0,
    });
    nudger.greeted(read, {
      headSeq: 2,
      floorSeq: 1,
      unreadCount: 0,
      unseenCount: 0,
      archivedCount: 0,
      readVersion: 3,
    });
    // When a change with a higher head but an older read state arrives
    nudger.onChanges([
      change(7, 4, { unreadCount: 3, unseenCount: 3, archivedCount: 0, readVersion: 1 }),
    ]);
    // Then the first is told the change, the second the higher head with its own read state
    expect(behind.socket.sent).toEqual([
      {
        type: 'head',
        headSeq: 4,
        floorSeq: 1,
        unreadCount: 3,
        unseenCount: 3,
        archivedCount: 0,
        readVersion: 1,
      },
    ]);
    expect(read.socket.sent).toEqual([
      {
        type: 'head',
        headSeq: 4,
        floorSeq: 1,
        unreadCount: 0,
        unseenCount: 0,
        archivedCount: 0,
        readVersion: 3,
      },
    ]);
  });
});
