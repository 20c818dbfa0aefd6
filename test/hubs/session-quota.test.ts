import { describe, expect, it } from 'vitest';
import { SessionQuota, type SessionRecord } from '../../src/hubs/session-quota.js';

const open = (uid: number, sessionId: string, hubId: string): SessionRecord => ({
  type: 'open',
  uid,
  sessionId,
  hubId,
});

describe('SessionQuota', () => {
  it('should kick the oldest local session once quota newer sessions follow it', () => {
    const quota = new SessionQuota('A', 2, 1000);
    quota.addLocal('a1');
    expect(quota.apply(open(7, 'a1', 'A'), 0)).toEqual([]);
    expect(quota.apply(open(7, 'b1', 'B'), 0)).toEqual([]);
    expect(quota.apply(open(7, 'b2', 'B'), 0)).toEqual(['a1']);
  });

  it('should not track a uid before one of its own sessions appears', () => {
    const quota = new SessionQuota('A', 1, 1000);
    expect(quota.apply(open(7, 'b1', 'B'), 0)).toEqual([]);
    expect(quota.apply(open(7, 'b2', 'B'), 0)).toEqual([]);
    expect(quota.knownSessions(7)).toBe(0);
  });

  it('should let closes make room', () => {
    const quota = new SessionQuota('A', 2, 1000);
    quota.addLocal('a1');
    quota.apply(open(7, 'a1', 'A'), 0);
    quota.apply(open(7, 'b1', 'B'), 0);
    quota.apply({ type: 'close', uid: 7, sessionId: 'b1', hubId: 'B' }, 0);
    expect(quota.apply(open(7, 'b2', 'B'), 0)).toEqual([]);
  });

  it('should forget a silent hub’s sessions after the timeout, and a leaving hub’s at once', () => {
    const quota = new SessionQuota('A', 3, 1000);
    quota.addLocal('a1');
    quota.apply(open(7, 'a1', 'A'), 0);
    quota.apply(open(7, 'b1', 'B'), 0);
    quota.apply(open(7, 'c1', 'C'), 0);
    expect(quota.knownSessions(7)).toBe(3);
    quota.apply({ type: 'heartbeat', hubId: 'C' }, 900);
    expect(quota.sweep(1500)).toEqual(['B']);
    expect(quota.knownSessions(7)).toBe(2);
    quota.apply({ type: 'leave', hubId: 'C' }, 1600);
    expect(quota.knownSessions(7)).toBe(1);
    expect(quota.apply(open(7, 'd1', 'D'), 1700)).toEqual([]);
    expect(quota.apply(open(7, 'd2', 'D'), 1700)).toEqual([]);
    expect(quota.apply(open(7, 'd3', 'D'), 1700)).toEqual(['a1']);
  });

  it('should stop tracking a uid when its last local session ends', () => {
    const quota = new SessionQuota('A', 1, 1000);
    quota.addLocal('a1');
    quota.apply(open(7, 'a1', 'A'), 0);
    quota.removeLocal(7, 'a1');
    expect(quota.knownSessions(7)).toBe(0);
    expect(quota.apply(open(7, 'a1', 'A'), 0)).toEqual([]);
  });
});
