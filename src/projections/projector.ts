import type { Knex } from 'knex';
import type { CommandLimits } from '../commands/command-record.js';
import type { FeedPosition, HeadChange } from '../domain/head-state.js';
import type {
  BatchControl,
  ChangeFeed,
  CommandLog,
  DeadLetter,
  LogBatch,
  LogConsumer,
  LogRecord,
} from '../log/log.js';
import type { Logger } from '../logger.js';
import { withRetry } from '../retry.js';
import { isDuplicateKey } from '../store/database.js';
import {
  checkPartitionCount,
  confirmNotified,
  loadCheckpoint,
  checkpointStatements,
  readEpoch,
  type Checkpoint,
} from './checkpoints.js';
import { expiryProjection } from './expiry.js';
import { ProjectionBatch, currentHeads } from './projection-batch.js';
import { ProjectedUsers } from './projected-users.js';
import { readStatesProjection } from './read-states.js';
import { FencedCommits } from './statements.js';
import { localUids, routeRecords, type LocalCommand } from './routing.js';
import { userFeedProjection } from './user-feed.js';

export { FencedError } from './checkpoints.js';

/**
 * A batch's time by phase: reading the users and deliveries it touches (`load`), deciding in
 * memory (`apply`), the transaction up to its commit (`write`), announcing heads (`notify`),
 * and dead letters and forwards to other partitions (`route`).
 */
// A type, not an interface: metrics take it as a record of phases.
export type BatchPhases = {
  load: number;
  apply: number;
  write: number;
  notify: number;
  route: number;
};

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
    /** Where the batch's time went, in ms, summed over its transactions. */
    phases: BatchPhases;
    /**
     * Ms from the log time of the batch's oldest record to the start of its batch: the hop
     * through the log and the wait for the partition's batch before it (clocks permitting).
     */
    waitMs: number;
  }): void;
  /** Wraps the handling of each batch (tracing); `run` takes the records to project. */
  readonly aroundBatch?: (
    batch: LogBatch,
    run: (batch: LogBatch) => Promise<void>,
  ) => Promise<void>;
  /** Records about to be dead-lettered, with their reasons (tracing). */
  readonly onDeadLetters?: (letters: readonly DeadLetter[]) => void;
  /** Wraps each publish of head changes (tracing); `publish` takes the changes to send. */
  readonly aroundNotify?: (
    changes: readonly HeadChange[],
    publish: (changes: readonly HeadChange[]) => Promise<void>,
  ) => Promise<void>;
}

/**
 * How long a partition stays idle after an announcement before its checkpoint records it (see
 * {@link confirmNotified}); a busy partition's next commit records it anyway.
 */
const CONFIRM_NOTIFIED_MS = 200;

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
  /**
   * Memory for the rows of the users this projector committed, so a slice reads only users it
   * has not seen (see {@link ProjectedUsers}), in bytes. Default 32 MiB; 0 reads every user.
   */
  readonly userCacheBytes?: number;
}

/** Default of {@link ProjectorOptions.userCacheBytes}. */
export const DEFAULT_USER_CACHE_BYTES = 32 << 20;

/** The consumer group every projector process joins. */
export function projectorGroup(topic: string): string {
  return `${topic}.projector`;
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

/**
 * Applies the commands log to the read model with exactly-once effect: each batch's rows and
 * the partition's next offset commit in one transaction, guarded by a compare-and-set on that
 * offset so a stale member can never apply a batch twice. Head notifications follow the commit
 * and are re-sent after a crash from `notified_offset`.
 */
export class Projector {
  private readonly partitions = new Map<number, Checkpoint>();
  /** Aborted by stop(): pending retries give up at once. */
  private stopping = new AbortController();
  private consumer: LogConsumer | null = null;
  private partitionCount = 0;
  private running = false;
  /** The read model's epoch, re-read with every partition's checkpoint. */
  private epoch = '';
  private readonly confirms = new Map<number, { timer: NodeJS.Timeout; offset: number }>();
  private readonly now: () => number;
  private readonly log: Logger;
  /** The slices of the partitions ready together commit in one transaction (see FencedCommits). */
  private readonly commits: FencedCommits;
  private readonly known: ProjectedUsers;

  constructor(private readonly options: ProjectorOptions) {
    this.now = options.now ?? Date.now;
    this.commits = new FencedCommits(options.db);
    this.known = new ProjectedUsers(options.userCacheBytes ?? DEFAULT_USER_CACHE_BYTES);
    this.log = options.logger.child({ component: 'projector' });
  }

  async start(): Promise<void> {
    this.partitionCount = await this.options.log.partitionCount();
    await checkPartitionCount(this.options.db, this.options.log.topic, this.partitionCount);
    this.epoch = await readEpoch(this.options.db);
    this.running = true;
    this.stopping = new AbortController();
    const { aroundBatch } = this.options.hooks ?? {};
    this.consumer = this.options.log.consume({
      group: this.options.group ?? projectorGroup(this.options.log.topic),
      startOffset: (partition) => this.load(partition),
      onBatch: (batch, control) =>
        aroundBatch
          ? aroundBatch(batch, (traced) => this.onBatch(traced, control))
          : this.onBatch(batch, control),
      onAssignment: (owned) => {
        for (const p of [...this.partitions.keys()]) {
          if (owned.includes(p)) continue;
          this.partitions.delete(p);
          this.known.forgetPartition(p);
        }
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
    this.stopping.abort();
    await this.consumer?.stop();
    this.consumer = null;
    this.known.clear();
    // What was announced is recorded now, not after the idle delay: a process starting next
    // knows the announcements are complete without waiting for a commit.
    const pending = [...this.confirms].map(([partition, { timer, offset }]) => {
      clearTimeout(timer);
      return this.confirm(partition, offset);
    });
    this.confirms.clear();
    await Promise.all(pending);
  }

  private async load(partition: number): Promise<number> {
    const { db } = this.options;
    return withRetry(
      async () => {
        // Another projector may have owned the partition since: what we knew of its users is old.
        this.known.forgetPartition(partition);
        const checkpoint = await loadCheckpoint(db, this.options.log.topic, partition, this.now());
        this.epoch = await readEpoch(db);
        this.partitions.set(partition, checkpoint);
        this.log.info(
          {
            partition,
            nextOffset: checkpoint.nextOffset,
            notifiedOffset: checkpoint.notifiedOffset,
          },
          'partition loaded',
        );
        return checkpoint.notifiedOffset;
      },
      {
        shouldContinue: () => this.running,
        signal: this.stopping.signal,
        onRetry: (err, attempt, delay) =>
          this.log.warn(
            { err, partition, attempt, delay },
            'loading projector offsets failed; retrying',
          ),
      },
    );
  }

  /**
   * Announces changes and, after them, that every commit of the partition below `offset` is
   * announced; once the partition idles, its checkpoint records that too.
   */
  private async notify(
    changes: readonly HeadChange[],
    partition: number,
    offset: number,
  ): Promise<void> {
    const { feed, hooks } = this.options;
    const position: FeedPosition = { partition, offset, epoch: this.epoch };
    const publish = (traced: readonly HeadChange[]) => feed.publish(traced, position);
    await (hooks?.aroundNotify && changes.length > 0
      ? hooks.aroundNotify(changes, publish)
      : publish(changes));
    this.scheduleConfirm(partition, offset);
  }

  private scheduleConfirm(partition: number, offset: number): void {
    clearTimeout(this.confirms.get(partition)?.timer);
    const timer = setTimeout(() => {
      this.confirms.delete(partition);
      void this.confirm(partition, offset);
    }, CONFIRM_NOTIFIED_MS);
    timer.unref();
    this.confirms.set(partition, { timer, offset });
  }

  private async confirm(partition: number, offset: number): Promise<void> {
    const { db, log } = this.options;
    await confirmNotified(db, log.topic, partition, offset).catch((err: unknown) =>
      this.log.debug({ err, partition }, 'could not record the announced offset'),
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
    const waitMs = Math.max(0, this.now() - batch.records[0]!.timestamp);
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

    const routing = {
      partition,
      partitionCount: this.partitionCount,
      limits: this.options.limits,
      forwarded: state.forwarded,
    };
    const renotify = new Set<number>();
    const toApply: LogRecord[] = [];
    let renotifiedUpTo = -1;
    for (const record of batch.records) {
      if (record.offset >= state.nextOffset) toApply.push(record);
      else if (record.offset >= state.notifiedOffset) {
        for (const uid of localUids(record, routing)) renotify.add(uid);
        renotifiedUpTo = record.offset + 1;
      }
    }
    if (renotifiedUpTo >= 0) {
      // Committed before a crash, perhaps never announced: announce the users' heads as they
      // stand now, which is at least what those commits made them.
      const changes = await withRetry(() => currentHeads(this.options.db, [...renotify]), {
        shouldContinue: () => this.running && control.isActive(),
        signal: this.stopping.signal,
      });
      await this.notify(changes, partition, renotifiedUpTo);
    }
    if (toApply.length === 0) return;

    const { letters, forwards, local } = routeRecords(toApply, routing);
    // Before the commits: a crash after these sends re-sends them, and both are safe to repeat
    // (dead letters are at-least-once; forwarded records are deduped on their origin).
    const phases: BatchPhases = { load: 0, apply: 0, write: 0, notify: 0, route: 0 };
    const routed = performance.now();
    if (letters.length > 0) this.options.hooks?.onDeadLetters?.(letters);
    await this.options.log.deadLetter(letters);
    await this.options.log.append(forwards);
    phases.route += performance.now() - routed;

    let deliveries = 0;
    let readCommands = 0;
    const end = toApply[toApply.length - 1]!.offset + 1;
    for (const slice of transactionSlices(local, toApply[0]!.offset, end)) {
      const applied = await this.applySlice(partition, state, slice, control, phases);
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
      phases,
      waitMs,
    });
  }

  /**
   * Projects one slice of a batch in one transaction that also moves the partition's offset to
   * the slice's end, then publishes the head changes it made.
   */
  private async applySlice(
    partition: number,
    state: Checkpoint,
    slice: TransactionSlice,
    control: BatchControl,
    phases: BatchPhases,
  ): Promise<{ deliveries: number; readCommands: number }> {
    const { local, firstOffset, nextOffset } = slice;
    const uids = new Set<number>();
    const eventIds = new Set<string>();
    for (const item of local) {
      for (const uid of item.uids) uids.add(uid);
      if (item.command.type === 'publish') eventIds.add(item.command.id);
    }
    const attempt = async (checked: boolean) => {
      const projection = new ProjectionBatch(this.options.db, partition);
      let at = performance.now();
      if (checked) await projection.load(uids, eventIds);
      else await projection.loadOptimistic(uids, this.known);
      phases.load += performance.now() - at;
      at = performance.now();
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
        } else if (expiryProjection.canHandle(command)) {
          expiryProjection.apply(projection, command, record);
        }
        if (item.origin) {
          const prev = forwardMarks.get(item.origin.partition) ?? -1;
          forwardMarks.set(item.origin.partition, Math.max(prev, item.origin.offset));
        }
      }
      // Before the commit, like the batch's other dead letters: a crash in between sends them
      // again (at least once), never not at all.
      const conflicts = projection.conflictLetters();
      phases.apply += performance.now() - at;
      if (conflicts.length > 0) {
        at = performance.now();
        this.options.hooks?.onDeadLetters?.(conflicts);
        await this.options.log.deadLetter(conflicts);
        phases.route += performance.now() - at;
      }
      await control.heartbeat();
      at = performance.now();
      await this.commits.commit((q) => {
        const checkpoint = checkpointStatements(this.options.db, q, {
          topic: this.options.log.topic,
          partition,
          expectedNext: state.nextOffset,
          nextOffset,
          notifiedOffset: firstOffset,
          forwardMarks,
          now: this.now(),
        });
        return {
          fence: checkpoint.fence,
          statements: [
            ...checkpoint.statements,
            ...projection.statements(q, this.options.log.topic),
          ],
        };
      });
      phases.write += performance.now() - at;
      return { projection, deliveries, readCommands, forwardMarks };
    };
    const applied = await withRetry(
      async () => {
        // Keeps the group membership while a store outage makes attempts fail early.
        await control.heartbeat().catch(() => undefined);
        try {
          return await attempt(false);
        } catch (err) {
          // A publish of an id the partition holds (a retry, a re-send): read what is stored
          // and apply the slice again, deduplicated. The users are read again too, so a row
          // that is somehow not what we remembered is corrected rather than written over.
          if (!isDuplicateKey(err)) throw err;
          return await attempt(true);
        }
      },
      {
        shouldContinue: () => this.running && control.isActive(),
        signal: this.stopping.signal,
        onRetry: (err, attempt, delay) =>
          this.log.warn({ err, partition, attempt, delay }, 'projection batch failed; retrying'),
      },
    ).catch((err: unknown) => {
      // Our offsets may be stale: reload them before this partition's next batch.
      this.partitions.delete(partition);
      this.known.forgetPartition(partition);
      throw err;
    });

    for (const [uid, user] of applied.projection.committedUsers())
      this.known.put(uid, partition, user);
    state.notifiedOffset = firstOffset;
    state.nextOffset = nextOffset;
    for (const [source, offset] of applied.forwardMarks) state.forwarded.set(source, offset);
    this.options.hooks?.onApplied?.(partition, nextOffset);
    const notifying = performance.now();
    await this.notify(applied.projection.changes(), partition, nextOffset);
    phases.notify += performance.now() - notifying;
    return { deliveries: applied.deliveries, readCommands: applied.readCommands };
  }
}
