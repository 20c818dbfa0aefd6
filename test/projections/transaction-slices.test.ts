import { describe, expect, it } from 'vitest';
import {
  MAX_DELIVERIES_PER_TRANSACTION as MAX,
  transactionSlices,
} from '../../src/projections/projector.js';

const command = (offset: number, recipients: number) => ({
  record: { offset },
  uids: Array.from({ length: recipients }, (_, i) => i + 1),
});

const bounds = (slices: ReturnType<typeof transactionSlices>) =>
  slices.map((s) => [s.firstOffset, s.nextOffset, s.local.map((c) => c.record.offset)]);

describe('transactionSlices', () => {
  it('should keep a batch within the budget in one transaction', () => {
    const local = [command(10, 3), command(11, 1), command(13, 2)];
    expect(bounds(transactionSlices(local, 10, 15))).toEqual([[10, 15, [10, 11, 13]]]);
  });

  it('should cut a big batch after the command that fills the budget, covering every offset', () => {
    // Given commands of half the budget at offsets 0, 2, 3 and 5 (1 and 4 are dead letters),
    const local = [0, 2, 3, 5].map((offset) => command(offset, MAX / 2));
    // when sliced, then a transaction ends after every second command, the last at the end.
    expect(bounds(transactionSlices(local, 0, 7))).toEqual([
      [0, 3, [0, 2]],
      [3, 7, [3, 5]],
    ]);
  });

  it('should give a command with more recipients than the budget a transaction of its own', () => {
    const local = [command(0, 1), command(1, MAX + 1), command(2, 1)];
    expect(bounds(transactionSlices(local, 0, 3))).toEqual([
      [0, 2, [0, 1]],
      [2, 3, [2]],
    ]);
  });

  it('should still move the offsets over a batch with nothing to apply', () => {
    expect(bounds(transactionSlices([], 4, 9))).toEqual([[4, 9, []]]);
  });
});
