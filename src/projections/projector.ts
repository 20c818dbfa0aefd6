import type { Knex } from 'knex';
import {
  InvalidCommand,
  decodeCommand,
  encodeCommand,
  uidsOf,
  type CommandLimits,
  type CommandRecord,
} from '../commands/command-record.js';
import { partitionOfUid } from '../domain/partitioner.js';
import {
  HEADERS,
  type AppendRecord,
  type BatchControl,
  type ChangeFeed,
  type CommandLog,
  type DeadLetter,
  type LogBatch,
  type LogConsumer,
  type LogRecord,
} from '../log/log.js';
import type { Logger } from '../logger.js';
import { withRetry } from '../retry.js';
import { ProjectionBatch, currentHeads } from './projection-batch.js';
import { readStatesProjection } from './read-states.js';
import { userFeedProjection } from './user-feed.js';
import { typed } from '../store/database.js';

/** Observers of projector progress (metrics, in-process waiters, tracing). */
export interface ProjectorHooks {
  /** All records below `nextOffset` of `partition` are applied and committed. */
  onApplied?(partition: number, nextOffset: number): void;
  onBatch?(info: {
    partition: number;
    records: number;
    deliveries: number;
    readCommands: number;
    deadLetters: number;
    forwarded: number;
    durationMs: number;
    lag: number | null;
  }): void;
}

export interface ProjectorOptions {
  readonly db: Knex;
  readonly log: CommandLog;
  readonly feed: ChangeFeed;
  readonly limits: CommandLimits;
  readonly logger: Logger;
  readonly now?: () => number;
  readonly hooks?: ProjectorHooks;
  /** Consumer group of the projectors; all projector processes share it. */
  readonly group?: string;
  /**
   * Per partition, the offset where this projector stops applying (a rebuild's end); records
   * from there on are left for the next projector. No limit when absent.
   */
  readonly until?: readonly number[];
}

/** The consumer group every projector process joins. */
export function projectorGroup(topic: string): string {
  return `${topic}.projector`;
}

interface PartitionState {
  /** First offset not yet applied (as committed in projector_offsets). */
  nextOffset: number;
  /** Records from here to nextOffset may still owe their head notification. */
  notifiedOffset: number;
  /** Highest source offset applied per source partition, for re-routed records. */
  forwarded: Map<number, number>;
}

/** Another projector committed this partition since we loaded it: our view is stale. */
export class FencedError extends Error {
  override readonly name = 'FencedError';
}

/**
 * Deliveries one transaction writes at most. A Kafka fetch can hold a megabyte of commands per
 * partition (150,000 deliveries when each has 100 recipients); one transaction for all of it
 * holds row locks and the group session for seconds, and the coordinator drops a member that
 * stays silent past its session timeout.
 */
export const MAX_DELIVERIES_PER_TRANSACTION = 10_000;

/** Commands applied in one transaction, and the offsets it moves the partition between. */
export interface TransactionSlice<T = LocalCommand> {
  readonly local: readonly T[];
  readonly firstOffset: number;
  readonly nextOffset: number;
}

/**
 * Cuts a batch's commands into slices of about {@link MAX_DELIVERIES_PER_TRANSACTION}
 * deliveries, cutting only after a command, so each slice's offsets cover the records between
 * (dead letters and forwards included); the last slice ends at `end`.
 */
export function transactionSlices<
  T extends { readonly record: { readonly offset: number }; readonly uids: readonly number[] },
>(local: readonly T[], first: number, end: number): TransactionSlice<T>[] {
  const slices: TransactionSlice<T>[] = [];
  let firstOffset = first;
  let current: T[] = [];
  let weight = 0;
  for (const item of local) {
    current.push(item);
    weight += Math.max(1, item.uids.length);
    if (weight >= MAX_DELIVERIES_PER_TRANSACTION) {
      const nextOffset = item.record.offset + 1;
      slices.push({ local: current, firstOffset, nextOffset });
      firstOffset = nextOffset;
      current = [];
      weight = 0;
    }
  }
  const last = slices.at(-1);
  if (current.length === 0 && last) slices[slices.length - 1] = { ...last, nextOffset: end };
  else slices.push({ local: current, firstOffset, nextOffset: end });
  return slices;
}

interface LocalCommand {
  readonly record: LogRecord;
  readonly command: CommandRecord;
  /** Recipients of a publish that belong to this partition. */
  readonly uids: readonly number[];
  /** Source partition and offset when the record was re-routed here. */
  readonly origin: { partition: number; offset: number } | null;
}

function parseOrigin(header: string | undefined): { partition: number; offset: number } | null {
  if (!header) return null;
  const match = /^(\d+):(\d+)$/.exec(header);
  if (!match) return null;
  return { partition: Number(match[1]), offset: Number(match[2]) };
}

/**
 * Applies the commands log to the read model with exactly-once effect: each batch's rows and
 * the partition's next offset commit in one transaction, guarded by a compare-and-set on that
 * offset so a stale member can never apply a batch twice. Head notifications follow the commit
 * and are re-sent after a crash from `notified_offset`.
 */
export class Projector {
  private readonly partitions = new Map<number, PartitionState>();
  private consumer: LogConsumer | null = null;
  private partitionCount = 0;
  private running = false;
  private readonly now: () => number;
  private readonly log: Logger;

  constructor(private readonly options: ProjectorOptions) {
    this.now = options.now ?? Date.now;
    this.log = options.logger.child({ component: 'projector' });
  }

  async start(): Promise<void> {
    this.partitionCount = await this.options.log.partitionCount();
    await this.checkPartitionCount();
    this.running = true;
    this.consumer = this.options.log.consume({
      group: this.options.group ?? projectorGroup(this.options.log.topic),
      startOffset: (partition) => this.load(partition),
      onBatch: (batch, control) => this.onBatch(batch, control),
      onAssignment: (owned) => {
        for (const p of [...this.partitions.keys()])
          if (!owned.includes(p)) this.partitions.delete(p);
      },
    });
    await this.consumer.ready();
  }

  isRunning(): boolean {
    return this.running;
  }

  /** Running and a member of the projectors' consumer group (for readiness). */
  isConsuming(): boolean {
    return this.running && (this.consumer?.isMember?.() ?? this.consumer !== null);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.consumer?.stop();
    this.consumer = null;
  }

  /** Seqs depend on uid→partition routing, so the partition count may never change. */
  private async checkPartitionCount(): Promise<void> {
    const { db } = this.options;
    const name = `partitions:${this.options.log.topic}`;
    const row = await typed<{ value: string } | undefined>(
      db('minipush_meta').where({ name }).first('value'),
    );
    if (!row) {
      await db('minipush_meta')
        .insert({ name, value: String(this.partitionCount) })
        .onConflict('name')
        .ignore();
      return;
    }
    if (Number(row.value) !== this.partitionCount) {
      throw new Error(
        `${this.options.log.topic} has ${this.partitionCount} partitions but the projections were built with ${row.value}; ` +
          'uids would move between partitions. Restore the partition count or rebuild into a new database.',
      );
    }
  }

  private async load(partition: number): Promise<number> {
    const { db } = this.options;
    const topic = this.options.log.topic;
    return withRetry(
      async () => {
        await db('projector_offsets')
          .insert({
            topic,
            log_partition: partition,
            next_offset: 0,
            notified_offset: 0,
            updated_at: this.now(),
          })
          .onConflict(['topic', 'log_partition'])
          .ignore();
        const row = await typed<{
          next_offset: number | string;
          notified_offset: number | string;
        }>(
          db('projector_offsets')
            .where({ topic, log_partition: partition })
            .first('next_offset', 'notified_offset'),
        );
        const marks = await typed<
          Array<{
            source_partition: number;
            source_offset: number | string;
          }>
        >(
          db('projector_forwards')
            .where({ topic, log_partition: partition })
            .select('source_partition', 'source_offset'),
        );
        const state: PartitionState = {
          nextOffset: Number(row.next_offset),
          notifiedOffset: Number(row.notified_offset),
          forwarded: new Map(marks.map((m) => [m.source_partition, Number(m.source_offset)])),
        };
        this.partitions.set(partition, state);
        this.log.info(
          { partition, nextOffset: state.nextOffset, notifiedOffset: state.notifiedOffset },
          'partition loaded',
        );
        return state.notifiedOffset;
      },
      {
        shouldContinue: () => this.running,
        onRetry: (err, attempt, delay) =>
          this.log.warn(
            { err, partition, attempt, delay },
            'loading projector offsets failed; retrying',
          ),
      },
    );
  }

  private async onBatch(whole: LogBatch, control: BatchControl): Promise<void> {
    const until = this.options.until?.[whole.partition];
    const batch =
      until === undefined
        ? whole
        : { ...whole, records: whole.records.filter((record) => record.offset < until) };
    if (batch.records.length === 0) return;
    const { partition } = batch;
    const started = performance.now();
    let state = this.partitions.get(partition);
    if (!state) {
      await this.load(partition);
      state = this.partitions.get(partition)!;
    }
    const first = batch.records[0]!;
    if (first.offset > state.nextOffset && first.offset > state.notifiedOffset) {
      // Records between what we applied and what we got are missing from the log.
      this.log.warn(
        { partition, expected: state.nextOffset, got: first.offset },
        'gap in the commands log',
      );
    }

    const renotify = new Set<number>();
    const toApply: LogRecord[] = [];
    for (const record of batch.records) {
      if (record.offset >= state.nextOffset) toApply.push(record);
      else if (record.offset >= state.notifiedOffset) {
        for (const uid of this.localUids(record, partition)) renotify.add(uid);
      }
    }
    if (renotify.size > 0) {
      const changes = await withRetry(() => currentHeads(this.options.db, [...renotify]), {
        shouldContinue: () => this.running && control.isActive(),
      });
      await this.options.feed.publish(changes);
    }
    if (toApply.length === 0) return;

    const { letters, forwards, local } = this.route(toApply, partition, state);
    // Before the commits: a crash after these sends re-sends them, and both are safe to repeat
    // (dead letters are at-least-once; forwarded records are deduped on their origin).
    await this.options.log.deadLetter(letters);
    await this.options.log.append(forwards);

    let deliveries = 0;
    let readCommands = 0;
    const end = toApply[toApply.length - 1]!.offset + 1;
    for (const slice of transactionSlices(local, toApply[0]!.offset, end)) {
      const applied = await this.applySlice(partition, state, slice, control);
      deliveries += applied.deliveries;
      readCommands += applied.readCommands;
    }

    this.options.hooks?.onBatch?.({
      partition,
      records: toApply.length,
      deliveries,
      readCommands,
      deadLetters: letters.length,
      forwarded: forwards.length,
      durationMs: performance.now() - started,
      lag: null,
    });
  }

  /**
   * Projects one slice of a batch in one transaction that also moves the partition's offset to
   * the slice's end, then publishes the head changes it made.
   */
  private async applySlice(
    partition: number,
    state: PartitionState,
    slice: TransactionSlice,
    control: BatchControl,
  ): Promise<{ deliveries: number; readCommands: number }> {
    const { local, firstOffset, nextOffset } = slice;
    const applied = await withRetry(
      async () => {
        // Keeps the group membership while a store outage makes attempts fail early.
        await control.heartbeat().catch(() => undefined);
        const projection = new ProjectionBatch(this.options.db);
        const uids = new Set<number>();
        const eventIds = new Set<string>();
        for (const item of local) {
          for (const uid of item.uids) uids.add(uid);
          if (item.command.type === 'publish') eventIds.add(item.command.id);
        }
        await projection.load(uids, eventIds);
        let deliveries = 0;
        let readCommands = 0;
        const forwardMarks = new Map<number, number>();
        for (const item of local) {
          const { command, record } = item;
          if (userFeedProjection.canHandle(command)) {
            deliveries += userFeedProjection.apply(projection, command, item.uids, record);
          } else if (readStatesProjection.canHandle(command)) {
            readStatesProjection.apply(projection, command, record);
            readCommands++;
          }
          if (item.origin) {
            const prev = forwardMarks.get(item.origin.partition) ?? -1;
            forwardMarks.set(item.origin.partition, Math.max(prev, item.origin.offset));
          }
        }
        await control.heartbeat();
        await this.commit(partition, state, firstOffset, nextOffset, forwardMarks, projection);
        return { projection, deliveries, readCommands, forwardMarks };
      },
      {
        canRetry: (err) => !(err instanceof FencedError),
        shouldContinue: () => this.running && control.isActive(),
        onRetry: (err, attempt, delay) =>
          this.log.warn({ err, partition, attempt, delay }, 'projection batch failed; retrying'),
      },
    ).catch((err: unknown) => {
      // Our offsets may be stale: reload them before this partition's next batch.
      this.partitions.delete(partition);
      throw err;
    });

    state.notifiedOffset = firstOffset;
    state.nextOffset = nextOffset;
    for (const [source, offset] of applied.forwardMarks) state.forwarded.set(source, offset);
    this.options.hooks?.onApplied?.(partition, nextOffset);
    await this.options.feed.publish(applied.projection.changes());
    return { deliveries: applied.deliveries, readCommands: applied.readCommands };
  }

  /** Splits records into dead letters, records for other partitions, and commands to apply. */
  private route(
    records: readonly LogRecord[],
    partition: number,
    state: PartitionState,
  ): { letters: DeadLetter[]; forwards: AppendRecord[]; local: LocalCommand[] } {
    const letters: DeadLetter[] = [];
    const forwards: AppendRecord[] = [];
    const local: LocalCommand[] = [];
    const seenOrigins = new Map<number, number>();
    for (const record of records) {
      let command: CommandRecord;
      try {
        command = decodeCommand(record.value, this.options.limits);
      } catch (err) {
        if (!(err instanceof InvalidCommand)) throw err;
        letters.push({ record, reason: err.message, field: err.field });
        continue;
      }
      const origin = parseOrigin(record.headers[HEADERS.origin]);
      if (origin) {
        const applied = Math.max(
          state.forwarded.get(origin.partition) ?? -1,
          seenOrigins.get(origin.partition) ?? -1,
        );
        if (origin.offset <= applied) continue;
        seenOrigins.set(origin.partition, origin.offset);
      }
      const byPartition = new Map<number, number[]>();
      for (const uid of uidsOf(command)) {
        const p = partitionOfUid(uid, this.partitionCount);
        let list = byPartition.get(p);
        if (!list) byPartition.set(p, (list = []));
        list.push(uid);
      }
      const mine = byPartition.get(partition) ?? [];
      byPartition.delete(partition);
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
            headers: { ...record.headers, [HEADERS.origin]: `${partition}:${record.offset}` },
          });
        }
      }
      if (mine.length > 0) local.push({ record, command, uids: mine, origin });
    }
    return { letters, forwards, local };
  }

  private localUids(record: LogRecord, partition: number): number[] {
    try {
      const command = decodeCommand(record.value, this.options.limits);
      return uidsOf(command).filter(
        (uid) => partitionOfUid(uid, this.partitionCount) === partition,
      );
    } catch {
      return [];
    }
  }

  private async commit(
    partition: number,
    state: PartitionState,
    firstOffset: number,
    nextOffset: number,
    forwardMarks: ReadonlyMap<number, number>,
    projection: ProjectionBatch,
  ): Promise<void> {
    const topic = this.options.log.topic;
    const now = this.now();
    await this.options.db.transaction(async (trx) => {
      // The fence comes first: it locks this partition's offset row for the whole transaction.
      const updated = await trx('projector_offsets')
        .where({ topic, log_partition: partition, next_offset: state.nextOffset })
        .update({ next_offset: nextOffset, notified_offset: firstOffset, updated_at: now });
      if (updated !== 1) {
        throw new FencedError(
          `partition ${partition} moved past offset ${state.nextOffset}: another projector owns it`,
        );
      }
      if (forwardMarks.size > 0) {
        await trx('projector_forwards')
          .insert(
            [...forwardMarks].map(([source, offset]) => ({
              topic,
              log_partition: partition,
              source_partition: source,
              source_offset: offset,
            })),
          )
          .onConflict(['topic', 'log_partition', 'source_partition'])
          .merge(['source_offset']);
      }
      await projection.write(trx, topic);
    });
  }
}
