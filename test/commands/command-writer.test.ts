import { describe, expect, it } from 'vitest';
import { decodeCommand } from '../../src/commands/command-record.js';
import { formatPositions, toAppendRecords } from '../../src/commands/command-writer.js';
import { commandLimits, loadConfig } from '../../src/config.js';
import { partitionOfUid } from '../../src/domain/partitioner.js';

const limits = commandLimits(loadConfig({ env: {} }));
const PARTITIONS = 8;

describe('toAppendRecords', () => {
  it('should write a publish once per partition that owns some of its recipients', () => {
    // Given an event for 40 users
    const to = Array.from({ length: 40 }, (_, i) => 1000 + i);
    const command = { v: 1, type: 'publish', id: 'e-40', to, body: 'hi' } as const;
    // When it becomes log records
    const records = toAppendRecords(command, PARTITIONS, { traceparent: 'tp' });
    // Then each partition gets one record with exactly the recipients it owns, keyed by the id
    const partitions = new Set(to.map((uid) => partitionOfUid(uid, PARTITIONS)));
    expect(records).toHaveLength(partitions.size);
    const seen: number[] = [];
    for (const record of records) {
      const decoded = decodeCommand(record.value, limits);
      if (decoded.type !== 'publish') throw new Error('not a publish');
      expect(record.key).toBe('e-40');
      expect(record.headers).toEqual({ traceparent: 'tp' });
      for (const uid of decoded.to) expect(partitionOfUid(uid, PARTITIONS)).toBe(record.partition);
      seen.push(...decoded.to);
    }
    expect(seen.sort()).toEqual(to);
  });

  it('should key a read mark by its uid on the uid’s partition', () => {
    const [record] = toAppendRecords({ v: 1, type: 'markReadUpTo', uid: 42, upTo: 7 }, PARTITIONS);
    expect(record).toMatchObject({ key: '42', partition: partitionOfUid(42, PARTITIONS) });
    expect(record!.headers).toBeUndefined();
  });

  it('should format positions as partition:offset, comma-separated', () => {
    expect(
      formatPositions([
        { partition: 1, offset: 5 },
        { partition: 3, offset: 0 },
      ]),
    ).toBe('1:5,3:0');
  });
});
