import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { emptyBitmap } from '../../src/domain/read-bitmap.js';
import { encodeReadBlock } from '../../src/domain/read-blocks.js';
import { COMPACT_KINDS, decodeCompact, encodeCompact } from '../../src/domain/read-compact.js';

function bitmapOf(seqs: Iterable<number>) {
  const bitmap = emptyBitmap();
  bitmap.addMany([...seqs]);
  return bitmap;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

describe('compact read states', () => {
  it('should give an empty encoding for an empty range', () => {
    expect(encodeCompact(bitmapOf([1, 2]), 5, 4)).toEqual(Buffer.alloc(0));
    expect(decodeCompact(Buffer.alloc(0), 5, 4)).toEqual([]);
  });

  it('should say "all read" in one byte', () => {
    // Given seqs 1..100000 all read, when encoded, then the unread list is empty.
    const encoded = encodeCompact(bitmapOf(range(1, 100_000)), 1, 100_000);
    expect([...encoded]).toEqual([COMPACT_KINDS.unreadList]);
    expect(decodeCompact(encoded, 1, 100_000)).toHaveLength(100_000);
  });

  it('should list a few unread seqs of a read feed as varint gaps', () => {
    // Given 1..1000 read but 10 seqs, when encoded, then a byte per unread seq (gaps < 128).
    const unread = [5, 100, 200, 300, 400, 500, 600, 700, 800, 999];
    const read = range(1, 1000).filter((s) => !unread.includes(s));
    const encoded = encodeCompact(bitmapOf(read), 1, 1000);
    expect(encoded[0]).toBe(COMPACT_KINDS.unreadList);
    expect(encoded.length).toBeLessThanOrEqual(1 + 10 * 2);
    expect(decodeCompact(encoded, 1, 1000)).toEqual(read);
  });

  it('should use the bitset for a random half and never be larger than the seed block', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5000 }),
        fc.integer({ min: 0, max: 3000 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer(),
        (from, span, density, seed) => {
          // Given any density of read seqs in [from, to] (and bits outside it), when encoded,
          let x = seed | 1;
          const random = () => {
            x ^= x << 13;
            x ^= x >>> 17;
            x ^= x << 5;
            return (x >>> 0) / 2 ** 32;
          };
          const to = from + span;
          const read = range(Math.max(1, from - 20), to + 20).filter(() => random() < density);
          const bitmap = bitmapOf(read);
          const encoded = encodeCompact(bitmap, from, to);
          // then it decodes to the read seqs of the range,
          expect(decodeCompact(encoded, from, to)).toEqual(
            read.filter((s) => s >= from && s <= to),
          );
          // and is no longer than the block's bytes plus the kind byte.
          const block = encodeReadBlock(bitmap, from, to)!;
          expect(encoded.length).toBeLessThanOrEqual(
            Buffer.from(block.base64, 'base64').length + 1,
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('should pick roaring for long runs and give the same bytes however the bitmap was built', () => {
    // Given alternating runs of 300 read and 300 unread seqs,
    const read = range(1, 30_000).filter((s) => Math.floor((s - 1) / 300) % 2 === 0);
    const built = bitmapOf(read);
    const ranged = emptyBitmap();
    for (let start = 1; start <= 30_000; start += 600) ranged.addRange(start, start + 300);
    ranged.runOptimize();
    // when encoded from either bitmap, then roaring's run containers win, byte for byte the same.
    const a = encodeCompact(built, 1, 30_000);
    const b = encodeCompact(ranged, 1, 30_000);
    expect(a[0]).toBe(COMPACT_KINDS.roaring);
    expect(b).toEqual(a);
    expect(decodeCompact(a, 1, 30_000)).toEqual(read);
  });

  it('should list a few read seqs of an unread feed', () => {
    const encoded = encodeCompact(bitmapOf([10, 5000, 9000]), 1, 10_000);
    expect(encoded[0]).toBe(COMPACT_KINDS.readList);
    expect(decodeCompact(encoded, 1, 10_000)).toEqual([10, 5000, 9000]);
  });
});
