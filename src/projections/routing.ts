import {
  InvalidCommand,
  decodeCommand,
  encodeCommand,
  uidsOf,
  type CommandLimits,
  type CommandRecord,
} from '../commands/command-record.js';
import { groupByPartition } from '../domain/partitioner.js';
import { HEADERS, type AppendRecord, type DeadLetter, type LogRecord } from '../log/log.js';

/** A command this partition applies, with the recipients it owns. */
export interface LocalCommand {
  readonly record: LogRecord;
  readonly command: CommandRecord;
  /** The command's uids that belong to this partition. */
  readonly uids: readonly number[];
  /** Source partition and offset when the record was re-routed here. */
  readonly origin: { partition: number; offset: number } | null;
}

/** A batch's records sorted by what becomes of them. */
export interface Routed {
  /** Junk, with the reason, for the dead-letter log. */
  readonly letters: DeadLetter[];
  /** Copies for the partitions that own the other uids of a command. */
  readonly forwards: AppendRecord[];
  readonly local: LocalCommand[];
}

export interface RoutingContext {
  readonly partition: number;
  readonly partitionCount: number;
  readonly limits: CommandLimits;
  /** Highest origin offset already applied per source partition (repeats are dropped). */
  readonly forwarded: ReadonlyMap<number, number>;
}

function parseOrigin(header: string | undefined): { partition: number; offset: number } | null {
  if (!header) return null;
  const match = /^(\d+):(\d+)$/.exec(header);
  if (!match) return null;
  return { partition: Number(match[1]), offset: Number(match[2]) };
}

/**
 * Decodes a batch of one partition and splits it: records that are not valid commands become
 * dead letters; uids owned by other partitions are forwarded there (one record per target,
 * tagged with its origin); what is left is applied here. A forwarded record whose uids are again
 * on several partitions means the partition count changed, and is dead-lettered.
 */
export function routeRecords(records: readonly LogRecord[], ctx: RoutingContext): Routed {
  const letters: DeadLetter[] = [];
  const forwards: AppendRecord[] = [];
  const local: LocalCommand[] = [];
  const seenOrigins = new Map<number, number>();
  for (const record of records) {
    let command: CommandRecord;
    try {
      command = decodeCommand(record.value, ctx.limits);
    } catch (err) {
      if (!(err instanceof InvalidCommand)) throw err;
      letters.push({ record, reason: err.message, field: err.field });
      continue;
    }
    const origin = parseOrigin(record.headers[HEADERS.origin]);
    if (origin) {
      const applied = Math.max(
        ctx.forwarded.get(origin.partition) ?? -1,
        seenOrigins.get(origin.partition) ?? -1,
      );
      if (origin.offset <= applied) continue;
      seenOrigins.set(origin.partition, origin.offset);
    }
    const byPartition = groupByPartition(uidsOf(command), ctx.partitionCount);
    const mine = byPartition.get(ctx.partition) ?? [];
    byPartition.delete(ctx.partition);
    if (byPartition.size > 0) {
      if (origin) {
        letters.push({
          record,
          reason: 're-routed record is on the wrong partition; was the partition count changed?',
        });
        continue;
      }
      for (const [target, uids] of byPartition) {
        forwards.push({
          partition: target,
          key: command.type === 'publish' ? command.id : String(uids[0]),
          value: encodeCommand(
            command.type === 'publish'
              ? { ...command, to: uids, createTime: command.createTime ?? record.timestamp }
              : command,
          ),
          headers: { ...record.headers, [HEADERS.origin]: `${ctx.partition}:${record.offset}` },
        });
      }
    }
    if (mine.length > 0) local.push({ record, command, uids: mine, origin });
  }
  return { letters, forwards, local };
}

/** The uids of a record that this partition owns; none for junk. */
export function localUids(
  record: LogRecord,
  ctx: Pick<RoutingContext, 'partition' | 'partitionCount' | 'limits'>,
): number[] {
  try {
    const command = decodeCommand(record.value, ctx.limits);
    return groupByPartition(uidsOf(command), ctx.partitionCount).get(ctx.partition) ?? [];
  } catch {
    return [];
  }
}
