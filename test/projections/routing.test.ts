import { describe, expect, it } from 'vitest';
import { encodeCommand } from '../../src/commands/command-record.js';
import { commandLimits, loadConfig } from '../../src/config.js';
import { groupByPartition, partitionOfUid } from '../../src/domain/partitioner.js';
import type { LogRecord } from '../../src/log/log.js';
import { localUids, routeRecords } from '../../src/projections/routing.js';

const limits = commandLimits(loadConfig({ env: {} }));
const PARTITIONS = 4;

function record(
  offset: number,
  value: Buffer | null,
  headers: Record<string, string> = {},
): LogRecord {
  return { partition: 0, offset, key: null, value, headers, timestamp: 1000 + offset };
}

/** Uids 1..n grouped by partition; the test needs some on partition 0 and some elsewhere. */
const owners = groupByPartition(
  Array.from({ length: 40 }, (_, i) => i + 1),
  PARTITIONS,
);
const here = owners.get(0)!;
const elsewhere = [...owners].filter(([p]) => p !== 0).flatMap(([, uids]) => uids);

describe('routeRecords', () => {
  const ctx = {
    partition: 0,
    partitionCount: PARTITIONS,
    limits,
    forwarded: new Map<number, number>(),
  };

  it('should apply what this partition owns and forward the rest, one record per target', () => {
    // Given a publish to users on several partitions, written to partition 0
    const to = [here[0]!, elsewhere[0]!, elsewhere[1]!];
    const value = encodeCommand({ v: 1, type: 'publish', id: 'e1', to, body: 1 });
    // When the batch is routed
    const { local, forwards, letters } = routeRecords([record(7, value)], ctx);
    // Then partition 0 applies its own recipient…
    expect(letters).toEqual([]);
    expect(local).toHaveLength(1);
    expect(local[0]!.uids).toEqual([here[0]]);
    // …and each other owner gets one copy tagged with where it came from, with the createTime
    // fixed to the record's time so every copy says the same.
    const targets = new Set(
      [elsewhere[0]!, elsewhere[1]!].map((u) => partitionOfUid(u, PARTITIONS)),
    );
    expect(forwards.map((f) => f.partition).sort()).toEqual([...targets].sort());
    for (const forward of forwards) {
      expect(forward.headers).toMatchObject({ 'minipush-origin': '0:7' });
      expect(JSON.parse(forward.value.toString())).toMatchObject({ id: 'e1', createTime: 1007 });
    }
  });

  it('should dead-letter junk with its reason and field, and go on', () => {
    const good = encodeCommand({ v: 1, type: 'markReadUpTo', uid: here[0]!, upTo: 3 });
    const { local, letters } = routeRecords(
      [record(1, Buffer.from('{"v":1,"type":"nope"}')), record(2, good)],
      ctx,
    );
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({
      field: 'type',
      reason: expect.stringMatching(/unknown command type/),
    });
    expect(local.map((l) => l.record.offset)).toEqual([2]);
  });

  it('should drop a forwarded record it already applied, and dead-letter one on the wrong partition', () => {
    const mine = encodeCommand({ v: 1, type: 'markReadUpTo', uid: here[0]!, upTo: 3 });
    const stray = encodeCommand({ v: 1, type: 'markReadUpTo', uid: elsewhere[0]!, upTo: 3 });
    const { local, letters } = routeRecords(
      [
        record(1, mine, { 'minipush-origin': '2:10' }),
        record(2, mine, { 'minipush-origin': '2:11' }),
        record(3, stray, { 'minipush-origin': '3:5' }),
      ],
      { ...ctx, forwarded: new Map([[2, 10]]) },
    );
    expect(local.map((l) => l.origin)).toEqual([{ partition: 2, offset: 11 }]);
    expect(letters.map((l) => l.reason)).toEqual([
      're-routed record is on the wrong partition; was the partition count changed?',
    ]);
  });

  it('should tell the local uids of a record, and none of junk', () => {
    const value = encodeCommand({
      v: 1,
      type: 'publish',
      id: 'e2',
      to: [here[1]!, elsewhere[2]!],
      body: 1,
    });
    expect(localUids(record(1, value), ctx)).toEqual([here[1]]);
    expect(localUids(record(2, Buffer.from('junk')), ctx)).toEqual([]);
  });
});
