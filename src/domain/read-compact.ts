import { BitmapClass, encodeBitmap, sliceBitmap, type ReadBitmap } from './read-bitmap.js';

/**
 * The `compact` read-state format: the read seqs of one contiguous range [from, to] in whichever
 * of four encodings is smallest for this response. The first byte says which; the rest is:
 *
 * - `0` bitset: bit i (least significant bit of byte i >> 3 first) is seq from + i; 1 = read.
 *   Never more than one byte over the seed's blocks, so no pattern makes it larger than them.
 * - `1` roaring: the portable roaring bitmap of the read seqs, as `format=roaring` gives it.
 * - `2` unread list: every seq in the range is read except these, ascending, as LEB128 varints
 *   of the gaps (the first is seq − from, each next one seq − previous − 1). "Read up to the
 *   head but a few" costs about a byte per unread seq.
 * - `3` read list: the same for the read seqs; every other seq in the range is unread.
 *
 * An empty range is zero bytes. Ties go to the lowest kind, so one set of seqs always gives the
 * same bytes.
 */
export const COMPACT_KINDS = { bitset: 0, roaring: 1, unreadList: 2, readList: 3 } as const;

function varintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    length++;
  }
  return length;
}

function writeVarint(out: Buffer, at: number, value: number): number {
  while (value >= 0x80) {
    out[at++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 0x80);
  }
  out[at++] = value;
  return at;
}

/** Size of a gap list of ascending seqs from `from`, or Infinity once it passes `limit`. */
function gapListLength(seqs: Uint32Array, from: number, limit: number): number {
  let length = 1;
  let previous = from - 1;
  for (const seq of seqs) {
    length += varintLength(seq - previous - 1);
    previous = seq;
    if (length >= limit) return Infinity;
  }
  return length;
}

function gapList(kind: number, seqs: Uint32Array, from: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  out[0] = kind;
  let at = 1;
  let previous = from - 1;
  for (const seq of seqs) {
    at = writeVarint(out, at, seq - previous - 1);
    previous = seq;
  }
  return out;
}

/** Encodes which seqs of [from, to] are read, in the smallest of the four encodings. */
export function encodeCompact(bitmap: ReadBitmap, from: number, to: number): Buffer {
  if (to < from) return Buffer.alloc(0);
  const n = to - from + 1;
  const read = sliceBitmap(bitmap, from, to);
  const bitsetLength = 1 + Math.ceil(n / 8);
  const roaring = encodeBitmap(read);
  let best: { kind: number; length: number } = { kind: 0, length: bitsetLength };
  if (1 + roaring.length < best.length) best = { kind: 1, length: 1 + roaring.length };
  const readCount = read.size;
  // A list costs at least a byte per seq: skip building one that cannot win.
  let unread: Uint32Array | null = null;
  if (1 + (n - readCount) < best.length) {
    const complement = new BitmapClass();
    complement.addRange(from, to + 1);
    complement.andNotInPlace(read);
    unread = complement.toUint32Array();
    const length = gapListLength(unread, from, best.length);
    if (length < best.length) best = { kind: 2, length };
  }
  let reads: Uint32Array | null = null;
  if (1 + readCount < best.length) {
    reads = read.toUint32Array();
    const length = gapListLength(reads, from, best.length);
    if (length < best.length) best = { kind: 3, length };
  }
  switch (best.kind) {
    case 1:
      return Buffer.concat([Buffer.of(1), roaring]);
    case 2:
      return gapList(2, unread!, from, best.length);
    case 3:
      return gapList(3, reads!, from, best.length);
    default: {
      const out = Buffer.alloc(bitsetLength);
      for (const seq of read) {
        const i = seq - from;
        out[1 + (i >> 3)]! |= 1 << (i & 7);
      }
      return out;
    }
  }
}

function readGaps(bytes: Uint8Array, from: number, to: number): number[] {
  const out: number[] = [];
  let previous = from - 1;
  let at = 1;
  while (at < bytes.length) {
    let value = 0;
    let scale = 1;
    for (;;) {
      const byte = bytes[at++];
      if (byte === undefined) throw new Error('compact read state: truncated varint');
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) break;
      scale *= 0x80;
    }
    previous += value + 1;
    if (previous > to) throw new Error('compact read state: seq past the range');
    out.push(previous);
  }
  return out;
}

/** The read seqs of [from, to], ascending, from a `compact` encoding. */
export function decodeCompact(bytes: Uint8Array, from: number, to: number): number[] {
  if (bytes.length === 0 || to < from) return [];
  const out: number[] = [];
  switch (bytes[0]) {
    case 0:
      for (let i = 0; i <= to - from; i++) {
        if (((bytes[1 + (i >> 3)] ?? 0) & (1 << (i & 7))) !== 0) out.push(from + i);
      }
      return out;
    case 1:
      return [...BitmapClass.deserialize(bytes.subarray(1), 'portable').toUint32Array()];
    case 2: {
      const unread = new Set(readGaps(bytes, from, to));
      for (let seq = from; seq <= to; seq++) if (!unread.has(seq)) out.push(seq);
      return out;
    }
    case 3:
      return readGaps(bytes, from, to);
    default:
      throw new Error(`compact read state: unknown kind ${bytes[0]}`);
  }
}
