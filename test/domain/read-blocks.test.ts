import { describe, expect, it } from 'vitest';
import {
  decodeBitmap,
  emptyBitmap,
  encodeBitmap,
  unreadCount,
} from '../../src/domain/read-bitmap.js';
import { decodeReadBlock, encodeReadBlock } from '../../src/domain/read-blocks.js';

function bitmapOf(seqs: number[]) {
  const bitmap = emptyBitmap();
  bitmap.addMany(seqs);
  return bitmap;
}

describe('read blocks (the seed format)', () => {
  it('should put the highest seq in the most significant bit of the first byte', () => {
    // Seqs 3..12, read: 12, 11, 5 → bits for 12,11,…,3 = 1100000100 → 0xC1 0x00.
    const block = encodeReadBlock(bitmapOf([5, 11, 12, 99]), 3, 12);
    expect(block).toEqual({
      seq: 12,
      len: 10,
      base64: Buffer.from([0xc1, 0x00]).toString('base64'),
    });
  });

  it('should round-trip any read set within the run', () => {
    const read = [1, 2, 3, 8, 9, 15, 16, 17, 40];
    const block = encodeReadBlock(bitmapOf(read), 1, 40)!;
    expect(decodeReadBlock(block)).toEqual(read);
    expect(Buffer.from(block.base64, 'base64')).toHaveLength(5);
  });

  it('should give no block for an empty run', () => {
    expect(encodeReadBlock(bitmapOf([1]), 5, 4)).toBeNull();
  });
});

describe('read bitmap', () => {
  it('should count unread seqs only within [floor, head]', () => {
    const bitmap = bitmapOf([1, 2, 3, 10, 11]);
    expect(unreadCount(bitmap, 1, 12)).toBe(7);
    expect(unreadCount(bitmap, 4, 12)).toBe(7);
    expect(unreadCount(bitmap, 11, 11)).toBe(0);
    expect(unreadCount(bitmap, 13, 12)).toBe(0);
  });

  it('should store "read up to N" in a few bytes', () => {
    const bitmap = emptyBitmap();
    bitmap.addRange(1, 100_001);
    const stored = encodeBitmap(bitmap);
    expect(stored.length).toBeLessThan(32);
    expect(decodeBitmap(stored).size).toBe(100_000);
  });
});
