import { sliceBitmap, type ReadBitmap } from './read-bitmap.js';

/**
 * The seed's read-state block: one run of contiguous stored seqs. `seq` is the run's highest
 * seq, `len` its length, and `base64` holds one bit per seq from `seq` downwards: bit i is
 * seq − i, most significant bit of each byte first, 1 = read.
 */
export interface ReadBlock {
  readonly seq: number;
  readonly len: number;
  readonly base64: string;
}

/** Encodes the read state of seqs [from, to] (one contiguous run) as a block. */
export function encodeReadBlock(bitmap: ReadBitmap, from: number, to: number): ReadBlock | null {
  if (to < from) return null;
  const len = to - from + 1;
  const bytes = Buffer.alloc(Math.ceil(len / 8));
  for (const seq of sliceBitmap(bitmap, from, to).toUint32Array()) {
    const i = to - seq;
    bytes[i >> 3]! |= 0x80 >> (i & 7);
  }
  return { seq: to, len, base64: bytes.toString('base64') };
}

/** Decodes a block back to the read seqs it holds, ascending. */
export function decodeReadBlock(block: ReadBlock): number[] {
  const bytes = Buffer.from(block.base64, 'base64');
  const out: number[] = [];
  for (let i = block.len - 1; i >= 0; i--) {
    if ((bytes[i >> 3]! & (0x80 >> (i & 7))) !== 0) out.push(block.seq - i);
  }
  return out;
}
