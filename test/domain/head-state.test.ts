import { describe, expect, it } from 'vitest';
import { headStateOf, isNewer, mergeHeads, sameHead } from '../../src/domain/head-state.js';

const state = (
  headSeq: number,
  floorSeq: number,
  unreadCount: number,
  readVersion: number,
  unseenCount = unreadCount,
  archivedCount = 0,
) => ({
  headSeq,
  floorSeq,
  unreadCount,
  unseenCount,
  archivedCount,
  readVersion,
});

describe('head rules', () => {
  it('should call a state newer when its head, floor or read version grew', () => {
    // Given what a session was told
    const told = state(10, 1, 3, 4);
    // Then a higher head, floor or read version is news, and nothing else is
    expect(isNewer(state(11, 1, 4, 4), told)).toBe(true);
    expect(isNewer(state(10, 2, 2, 4), told)).toBe(true);
    expect(isNewer(state(10, 1, 0, 5), told)).toBe(true);
    expect(isNewer(state(10, 1, 9, 4), told)).toBe(false);
    expect(isNewer(state(9, 1, 3, 3), told)).toBe(false);
    // And anything is news to a session told nothing yet
    expect(isNewer(told, null)).toBe(true);
  });

  it('should merge to the highest of each counter and the newest read state’s unread count', () => {
    // Given a head change and a read change that arrive out of order
    const newHead = state(12, 1, 5, 4);
    const newRead = state(10, 1, 0, 5);
    // When merged either way round
    const ab = mergeHeads(newHead, newRead);
    const ba = mergeHeads(newRead, newHead);
    // Then heads never go down and the unread count is the newer read version's
    expect(ab).toEqual(state(12, 1, 0, 5));
    expect(ba).toEqual(state(12, 1, 0, 5));
  });

  it('should take the higher head’s unread count when read versions tie', () => {
    expect(mergeHeads(state(10, 1, 3, 4), state(12, 1, 5, 4)).unreadCount).toBe(5);
    expect(mergeHeads(state(12, 1, 5, 4), state(10, 1, 3, 4)).unreadCount).toBe(5);
  });

  it('should keep the newest log time and drop nothing else when merging with nothing', () => {
    const withTime = { ...state(3, 1, 1, 0), logTime: 1000 };
    expect(mergeHeads(null, withTime)).toBe(withTime);
    expect(mergeHeads(withTime, state(4, 1, 2, 0)).logTime).toBe(1000);
    expect(mergeHeads(withTime, { ...state(4, 1, 2, 0), logTime: 2000 }).logTime).toBe(2000);
  });

  it('should say two states are the same by their four counters alone', () => {
    expect(sameHead({ ...state(3, 1, 1, 0), logTime: 5 }, state(3, 1, 1, 0))).toBe(true);
    expect(sameHead(state(3, 1, 1, 0), state(3, 1, 0, 0))).toBe(false);
  });

  it('should take only the head fields of a change', () => {
    const change = { uid: 7, traceparent: '00-x', ...state(3, 1, 1, 2), logTime: 9 };
    expect(headStateOf(change)).toEqual({ ...state(3, 1, 1, 2), logTime: 9 });
  });
});
