import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BitmapClass,
  decodeBitmap,
  emptyBitmap,
  encodeBitmap,
  type ReadBitmap,
} from '../../src/domain/read-bitmap.js';

type Op =
  | { kind: 'add'; seq: number }
  | { kind: 'addRange'; to: number }
  | { kind: 'delete'; seq: number }
  | { kind: 'trim'; below: number }
  | { kind: 'store' };

const op = (max: number): fc.Arbitrary<Op> =>
  fc.oneof(
    fc.record({ kind: fc.constant('add' as const), seq: fc.integer({ min: 1, max }) }),
    fc.record({ kind: fc.constant('addRange' as const), to: fc.integer({ min: 1, max }) }),
    fc.record({ kind: fc.constant('delete' as const), seq: fc.integer({ min: 1, max }) }),
    fc.record({ kind: fc.constant('trim' as const), below: fc.integer({ min: 1, max }) }),
    fc.record({ kind: fc.constant('store' as const) }),
  );

/** Read marks as the projector applies them, with round trips through the stored bytes. */
function replay(ops: readonly Op[]): ReadBitmap {
  let bitmap = emptyBitmap();
  for (const o of ops) {
    if (o.kind === 'add') bitmap.add(o.seq);
    else if (o.kind === 'addRange') bitmap.addRange(1, o.to + 1);
    else if (o.kind === 'delete') bitmap.delete(o.seq);
    else if (o.kind === 'trim') bitmap.removeRange(0, o.below);
    else bitmap = decodeBitmap(encodeBitmap(bitmap));
  }
  return bitmap;
}

describe('encodeBitmap', () => {
  it('should give the same bytes for the same seqs whatever the history', () => {
    // Runs and arrays of equal size: the bytes used to depend on which one the bitmap held.
    const viaRuns = new BitmapClass();
    viaRuns.addRange(1, 17);
    viaRuns.runOptimize();
    for (const seq of [6, 8, 9, 10, 11, 12, 13, 14, 15]) viaRuns.delete(seq);
    const viaAdds = new BitmapClass([1, 2, 3, 4, 5, 7, 16]);
    expect(encodeBitmap(viaRuns).toString('hex')).toBe(encodeBitmap(viaAdds).toString('hex'));

    for (const max of [40, 5000, 200_000]) {
      fc.assert(
        fc.property(fc.array(op(max), { maxLength: 40 }), (ops) => {
          const bitmap = replay(ops);
          const fresh = new BitmapClass(bitmap.toArray());
          expect(encodeBitmap(bitmap).equals(encodeBitmap(fresh))).toBe(true);
          expect(decodeBitmap(encodeBitmap(bitmap)).toArray()).toEqual(fresh.toArray());
        }),
        { numRuns: 100 },
      );
    }
  });
});
