import { keyOfUid, partitionOfUid } from '../domain/partitioner.js';
import type { AppendRecord, CommandLog, LogPosition } from '../log/log.js';
import { traceCommand } from '../telemetry/spans.js';
import { encodeCommand, type CommandRecord } from './command-record.js';

/**
 * Turns a command into log records on the partitions that own its uids: one record per user
 * command, and one per partition for a publish (its recipients split by owner), so no record
 * needs re-routing and an event with many recipients is written once per partition.
 */
export function toAppendRecords(
  command: CommandRecord,
  partitions: number,
  headers?: Readonly<Record<string, string>>,
): AppendRecord[] {
  if (command.type !== 'publish') {
    return [
      {
        partition: partitionOfUid(command.uid, partitions),
        key: keyOfUid(command.uid),
        value: encodeCommand(command),
        ...(headers ? { headers } : {}),
      },
    ];
  }
  const byPartition = new Map<number, number[]>();
  for (const uid of command.to) {
    const p = partitionOfUid(uid, partitions);
    let list = byPartition.get(p);
    if (!list) byPartition.set(p, (list = []));
    list.push(uid);
  }
  return [...byPartition].map(([partition, to]) => ({
    partition,
    key: command.id,
    value: encodeCommand({ ...command, to }),
    ...(headers ? { headers } : {}),
  }));
}

/** Appends validated commands to the write log, each in a producer span (see telemetry). */
export class CommandWriter {
  constructor(private readonly log: CommandLog) {}

  async write(
    command: CommandRecord,
    headers?: Readonly<Record<string, string>>,
  ): Promise<LogPosition[]> {
    return traceCommand(command, this.log.topic, async (spanHeaders) => {
      const partitions = await this.log.partitionCount();
      // The span's own context wins over a caller's: the projection becomes its child.
      const merged = spanHeaders ? { ...headers, ...spanHeaders } : headers;
      return this.log.append(toAppendRecords(command, partitions, merged));
    });
  }
}

/** A position as clients see it: `<partition>:<offset>`, several joined by commas. */
export function formatPositions(positions: readonly LogPosition[]): string {
  return positions.map((p) => `${p.partition}:${p.offset}`).join(',');
}
