import kafkajs, { type Consumer, type IHeaders, type Kafka, type KafkaMessage } from 'kafkajs';
import type { Logger } from '../logger.js';
import type { ConsumeOptions, LogRecord } from './log.js';
import type { TopicNames } from './topics.js';

// kafkajs spreads its error classes into module.exports, which Node's ESM named-export detection misses.
const { KafkaJSError } = kafkajs;

export interface KafkaLogOptions {
  readonly kafka: Kafka;
  readonly topics: TopicNames;
  readonly log: Logger;
  /** Consumer-group session timeout of projectors, in ms. Default 30000. */
  readonly sessionTimeoutMs?: number;
}

/** Errors by which the group coordinator says this member no longer owns its partitions. */
const MEMBERSHIP_ERRORS = new Set([
  'UNKNOWN_MEMBER_ID',
  'ILLEGAL_GENERATION',
  'REBALANCE_IN_PROGRESS',
  'FENCED_INSTANCE_ID',
  'NOT_COORDINATOR_FOR_GROUP',
]);

/**
 * How often, at most, the group's committed offsets catch up with what was applied. They are
 * only advisory (a member starts from the stored offsets), so they need not keep pace: kafkajs'
 * auto-commit sent an offset commit after every batch, a Kafka round trip between a batch and
 * the next fetch. Commits go out only as batches complete, never from a timer: the coordinator
 * takes a commit as a sign of life, and a member whose batches are stuck must not look alive.
 */
const ADVISORY_COMMIT_MS = 5000;

function isMembershipError(err: unknown): boolean {
  const type = (err as { type?: unknown } | null)?.type;
  return typeof type === 'string' && MEMBERSHIP_ERRORS.has(type);
}

export function headersToRecord(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) return out;
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const first = Array.isArray(value) ? value[0] : value;
    if (first !== undefined)
      out[name] = Buffer.isBuffer(first) ? first.toString('utf8') : String(first);
  }
  return out;
}

export function toLogRecord(partition: number, message: KafkaMessage): LogRecord {
  return {
    partition,
    offset: Number(message.offset),
    key: message.key === null ? null : message.key.toString('utf8'),
    value: message.value,
    headers: headersToRecord(message.headers),
    timestamp: Number(message.timestamp),
  };
}

/**
 * A consumer-group member whose read positions come from the caller (the projector keeps them
 * in the database), not from Kafka's committed offsets, which are only advisory here.
 */
export class KafkaLogConsumer {
  private readonly consumer: Consumer;
  private readonly positions = new Map<number, number>();
  /** Per partition, the next offset applied and not yet committed to the group. */
  private readonly uncommitted = new Map<number, number>();
  private lastCommit = 0;
  private readonly log: Logger;
  private running = false;
  private member = false;
  private stopping: Promise<void> | null = null;
  private readonly joined: Promise<void>;
  private markJoined!: () => void;
  private failJoined!: (err: unknown) => void;

  constructor(
    kafkaOptions: KafkaLogOptions,
    private readonly topic: string,
    private readonly options: ConsumeOptions,
  ) {
    this.log = kafkaOptions.log.child({ component: 'consumer', group: options.group });
    const sessionTimeout = kafkaOptions.sessionTimeoutMs ?? 30_000;
    this.consumer = kafkaOptions.kafka.consumer({
      groupId: options.group,
      sessionTimeout,
      rebalanceTimeout: 30_000,
      // Kafka's rule of thumb: at least three heartbeats per session timeout.
      heartbeatInterval: Math.min(3000, Math.floor(sessionTimeout / 3)),
      maxWaitTimeInMs: 250,
      allowAutoTopicCreation: false,
    });
    this.joined = new Promise((resolve, reject) => {
      this.markJoined = resolve;
      this.failJoined = reject;
    });
    this.joined.catch(() => undefined);
    this.consumer.on(this.consumer.events.GROUP_JOIN, (event) => {
      // A new generation may have moved partitions: forget positions, ask again per partition.
      this.positions.clear();
      this.uncommitted.clear();
      const mine = event.payload.memberAssignment[this.topic] ?? [];
      this.member = true;
      this.log.info({ partitions: mine }, 'joined consumer group');
      this.options.onAssignment?.(mine);
      this.markJoined();
    });
    this.consumer.on(this.consumer.events.CRASH, (event) => {
      this.member = false;
      this.log.error(
        { err: event.payload.error, restart: event.payload.restart },
        'consumer crashed',
      );
      if (!event.payload.restart && this.running) {
        // kafkajs gave up on this member; a partition must never stay unconsumed, so start over.
        setTimeout(() => {
          if (this.running) this.start();
        }, 1000).unref();
      }
    });
  }

  start(): void {
    this.running = true;
    const run = async () => {
      await this.consumer.connect();
      await this.consumer.subscribe({ topics: [this.topic], fromBeginning: true });
      await this.consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 64,
        eachBatch: async (payload) => {
          const { batch } = payload;
          const partition = batch.partition;
          if (!payload.isRunning() || payload.isStale()) return;
          let position = this.positions.get(partition);
          if (position === undefined) {
            position = await this.options.startOffset(partition);
            this.positions.set(partition, position);
            const first = Number(batch.firstOffset() ?? batch.lastOffset());
            if (first > position) {
              // Kafka's committed offset is ahead of ours (or retention removed records):
              // go back to where the projection stands. If records are gone, Kafka resets to
              // the earliest it has and the next batch starts there.
              this.log.info(
                { partition, from: position, batchFirst: first },
                'seeking to stored offset',
              );
              this.consumer.seek({ topic: this.topic, partition, offset: String(position) });
              return;
            }
          }
          const records: LogRecord[] = [];
          for (const message of batch.messages) {
            const offset = Number(message.offset);
            if (offset < position) continue;
            if (offset > position && records.length === 0 && position > 0) {
              this.log.warn(
                { partition, expected: position, got: offset },
                'log records missing (retention?)',
              );
            }
            records.push(toLogRecord(partition, message));
          }
          if (records.length > 0) {
            // kafkajs heartbeats only when asked. Once the coordinator says this member is gone
            // (its session expired during a long batch, or a rebalance began), the batch must
            // end so kafkajs can rejoin: retrying it would hold the partition forever.
            const membership: { lost: Error | null } = { lost: null };
            try {
              await this.options.onBatch(
                { partition, records },
                {
                  heartbeat: () =>
                    payload.heartbeat().catch((err: unknown) => {
                      if (isMembershipError(err)) membership.lost = err as Error;
                      throw err;
                    }),
                  isActive: () =>
                    membership.lost === null && payload.isRunning() && !payload.isStale(),
                },
              );
            } catch (err) {
              // Ask the handler where to start again before this partition's next batch, and
              // mark the error retriable so kafkajs retries and, at worst, restarts the member
              // instead of leaving the partition unconsumed.
              this.positions.delete(partition);
              // The coordinator's own answer lets kafkajs rejoin the group at once.
              if (membership.lost !== null) throw membership.lost;
              throw new KafkaJSError(err instanceof Error ? err : String(err), { retriable: true });
            }
            const last = records[records.length - 1]!.offset;
            this.positions.set(partition, last + 1);
            this.uncommitted.set(partition, last + 1);
            payload.resolveOffset(String(last));
            if (Date.now() - this.lastCommit >= ADVISORY_COMMIT_MS) void this.commitApplied();
          } else {
            payload.resolveOffset(batch.lastOffset());
          }
          await payload.heartbeat();
        },
      });
    };
    run().catch((err: unknown) => {
      this.log.error({ err }, 'consumer failed to start');
      this.failJoined(err);
    });
  }

  /** Commits the applied offsets to the group (advisory: for lag tools and a cold start). */
  private async commitApplied(): Promise<void> {
    if (!this.member || this.uncommitted.size === 0) return;
    this.lastCommit = Date.now();
    const offsets = [...this.uncommitted].map(([partition, next]) => ({
      topic: this.topic,
      partition,
      offset: String(next),
    }));
    this.uncommitted.clear();
    await this.consumer.commitOffsets(offsets).catch((err: unknown) => {
      // A rebalance or a coordinator move: the next member's commits will do.
      this.log.debug({ err }, 'advisory offset commit failed');
    });
  }

  ready(): Promise<void> {
    return this.joined;
  }

  isMember(): boolean {
    return this.running && this.member;
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (!this.running) return;
      this.running = false;
      await this.commitApplied();
      this.member = false;
      // disconnect() waits for the batch in hand and leaves the group.
      await this.consumer.disconnect().catch((err: unknown) => {
        this.log.warn({ err }, 'consumer disconnect failed');
      });
    })();
    return this.stopping;
  }
}
