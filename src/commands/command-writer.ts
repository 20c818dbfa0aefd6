import { groupByPartition, keyOfUid, partitionOfUid } from '../domain/partitioner.js';
import type { AppendRecord, CommandLog, LogPosition } from '../log/log.js';
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
  return [...groupByPartition(command.to, partitions)].map(([partition, to]) => ({
    partition,
    key: command.id,
    value: encodeCommand({ ...command, to }),
    ...(headers ? { headers } : {}),
  }));
}

/**
 * Wraps the append of one command, e.g. in a producer span; `write` takes the record headers
 * (trace context) to add.
 */
export type AroundAppend = (
  command: CommandRecord,
  topic: string,
  write: (headers: Record<string, string> | undefined) => Promise<LogPosition[]>,
) => Promise<LogPosition[]>;

/** Appends validated commands to the write log. */
export class CommandWriter {
  constructor(
    private readonly log: CommandLog,
    private readonly around?: AroundAppend,
  ) {}

  async write(command: CommandRecord): Promise<LogPosition[]> {
    const append = async (headers: Record<string, string> | undefined) =>
      this.log.append(toAppendRecords(command, await this.log.partitionCount(), headers));
    return this.around ? this.around(command, this.log.topic, append) : append(undefined);
  }
}

/** A position as clients see it: `<partition>:<offset>`, several joined by commas. */
export function formatPositions(positions: readonly LogPosition[]): string {
  return positions.map((p) => `${p.partition}:${p.offset}`).join(',');
}

/** The positions of {@link formatPositions}' text, or null when it is not that. */
export function parsePositions(text: string): LogPosition[] | null {
  const positions: LogPosition[] = [];
  for (const part of text.split(',')) {
    const match = /^(\d{1,9}):(\d{1,15})$/.exec(part.trim());
    if (!match) return null;
    positions.push({ partition: Number(match[1]), offset: Number(match[2]) });
  }
  return positions.length > 0 ? positions : null;
}
