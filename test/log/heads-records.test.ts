import { describe, expect, it } from 'vitest';
import type { HeadChange } from '../../src/domain/head-state.js';
import {
  decodeHeadsRecord,
  encodeFeedPosition,
  encodeHeadChange,
  encodeHeadChanges,
} from '../../src/log/log.js';

const change = (uid: number): HeadChange => ({
  uid,
  headSeq: 5,
  floorSeq: 2,
  unreadCount: 3,
  unseenCount: 2,
  archivedCount: 1,
  readVersion: 7,
  logTime: 1_700_000_000_000,
  traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`,
});

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

describe('heads records', () => {
  it('should read back a record of changes, in order', () => {
    const changes = [change(1), change(2), change(3)];
    expect(decodeHeadsRecord(encodeHeadChanges(changes))).toEqual({ changes });
  });

  it('should read back a position', () => {
    const position = { partition: 3, offset: 99, epoch: 'e' };
    expect(decodeHeadsRecord(encodeFeedPosition(position))).toEqual({ position });
  });

  it('should not write positions that builds before batched changes would read', () => {
    // They ignore records of changes; a position they read would claim changes they never saw.
    const written = JSON.parse(
      encodeFeedPosition({ partition: 0, offset: 1, epoch: 'e' }).toString(),
    ) as Record<string, unknown>;
    expect(written).not.toHaveProperty('position');
    expect(Object.keys(written)).toEqual(['announced']);
  });

  it('should read what builds before batched changes wrote: one change, or a position', () => {
    expect(decodeHeadsRecord(encodeHeadChange(change(4)))).toEqual({ changes: [change(4)] });
    expect(decodeHeadsRecord(json({ position: { partition: 1, offset: 2, epoch: 'x' } }))).toEqual({
      position: { partition: 1, offset: 2, epoch: 'x' },
    });
  });

  it('should count what was read as seen in changes from before seen and archived states', () => {
    const old = { uid: 9, headSeq: 4, floorSeq: 1, unreadCount: 2, readVersion: 3 };
    const completed = { ...old, unseenCount: 2, archivedCount: 0 };
    expect(decodeHeadsRecord(json(old))).toEqual({ changes: [completed] });
    expect(decodeHeadsRecord(json({ changes: [old, change(5)] }))).toEqual({
      changes: [completed, change(5)],
    });
  });

  it('should skip what it cannot read, keeping the rest of a record', () => {
    expect(decodeHeadsRecord(null)).toBeNull();
    expect(decodeHeadsRecord(Buffer.from('not json'))).toBeNull();
    expect(decodeHeadsRecord(json({ uid: 'x', headSeq: 1 }))).toBeNull();
    expect(decodeHeadsRecord(json({ announced: { partition: 1 } }))).toBeNull();
    expect(decodeHeadsRecord(json({ changes: [{ uid: 1 }, change(6), null, 7] }))).toEqual({
      changes: [change(6)],
    });
  });
});
