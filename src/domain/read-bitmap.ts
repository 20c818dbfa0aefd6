import roaring, { type RoaringBitmap32 as Bitmap } from 'roaring';

const { RoaringBitmap32 } = roaring;

export type ReadBitmap = Bitmap;

export function emptyBitmap(): ReadBitmap {
  return new RoaringBitmap32();
}

/** Reads a stored portable roaring bitmap; null or empty storage is an empty bitmap. */
export function decodeBitmap(stored: Uint8Array | null | undefined): ReadBitmap {
  if (!stored || stored.length === 0) return new RoaringBitmap32();
  return RoaringBitmap32.deserialize(stored, 'portable');
}

/**
 * Portable roaring serialisation, after run compression so "read up to N" costs a few bytes. One
 * set of seqs always gives the same bytes: runOptimize alone keeps a run container that is no
 * smaller than an array, so the bytes depended on how the bitmap was built, and a rebuild from
 * the log stored different ones.
 */
export function encodeBitmap(bitmap: ReadBitmap): Buffer {
  bitmap.removeRunCompression();
  bitmap.runOptimize();
  const bytes = bitmap.serialize('portable');
  return Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Read seqs within [from, to], both inclusive. */
export function readCountInRange(bitmap: ReadBitmap, from: number, to: number): number {
  if (to < from) return 0;
  return bitmap.rangeCardinality(from, to + 1);
}

/** Unread events among the stored seqs [floor, head]. */
export function unreadCount(bitmap: ReadBitmap, floorSeq: number, headSeq: number): number {
  if (headSeq < floorSeq) return 0;
  return headSeq - floorSeq + 1 - readCountInRange(bitmap, floorSeq, headSeq);
}

/** A copy holding only seqs within [from, to]. */
export function sliceBitmap(bitmap: ReadBitmap, from: number, to: number): ReadBitmap {
  const out = new RoaringBitmap32();
  if (to >= from) out.addRange(from, to + 1);
  out.andInPlace(bitmap);
  return out;
}

export const BitmapClass = RoaringBitmap32;
