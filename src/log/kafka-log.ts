import { randomUUID } from 'node:crypto';
import kafkajs, {
  type Admin,
  type Consumer,
  type IHeaders,
  type Kafka,
  type KafkaMessage,
  type Producer,
} from 'kafkajs';
import type { Logger } from '../logger.js';
import {
  HEADERS,
  decodeHeadChange,
  encodeHeadChange,
  type AppendRecord,
  type ChangeFeed,
  type CommandLog,
  type ConsumeOptions,
  type DeadLetter,
  type HeadChange,
  type LogConsumer,
  type LogPosition,
  type LogRecord,
  type Subscription,
} from './log.js';
import type { TopicNames } from './topics.js';

// kafkajs spreads its error classes into module.exports, which Node's ESM named-export detection misses.
const { KafkaJSError, Partitioners } = kafkajs;

/** Errors by which the group coordinator says this member no longer owns its partitions. */
const MEMBERSHIP_ERRORS = new Set([
  'UNKNOWN_MEMBER_ID',
  'ILLEGAL_GENERATION',
  'REBALANCE_IN_PROGRESS',
  'FENCED_INSTANCE_ID',
  'NOT_COORDINATOR_FOR_GROUP',
]);

function isMembershipError(err: unknown): boolean {
  const type = (err as { type?: unknown } | null)?.type;
  return typeof type === 'string' && MEMBERSHIP_ERRORS.has(type);
}

function headersToRecord(headers: IHeaders | undefined): Record<string, string> {
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

function toLogRecord(partition: number, message: KafkaMessage): LogRecord {
  return {
    partition,
    offset: Number(message.offset),
    key: message.key === null ? null : message.key.toString('utf8'),
    value: message.value,
    headers: headersToRecord(message.headers),
    timestamp: Number(message.timestamp),
  };
}

/** Lazily connected producer shared by everything one process sends. */
class SharedProducer {
  private producer: Producer | null = null;
  private connecting: Promise<Producer> | null = null;

  constructor(private readonly kafka: Kafka) {}

  get(): Promise<Producer> {
    if (this.producer) return Promise.resolve(this.producer);
    this.connecting ??= (async () => {
      const producer = this.kafka.producer({
        createPartitioner: Partitioners.DefaultPartitioner,
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        retry: { initialRetryTime: 100, maxRetryTime: 5000, retries: 10 },
      });
      try {
        await producer.connect();
      } catch (err) {
        this.connecting = null;
        throw err;
      }
      this.producer = producer;
      return producer;
    })();
    return this.connecting;
  }

  async close(): Promise<void> {
    const pending = this.connecting;
    this.connecting = null;
    this.producer = null;
    if (pending) await (await pending.catch(() => null))?.disconnect();
  }
}

interface Outgoing {
  readonly partition?: number;
  readonly key: string | null;
  readonly value: Buffer;
  readonly headers?: IHeaders;
}

/** Records one produce request carries at most when corked; partitions share the request. */
const MAX_CORKED_RECORDS = 2000;

/**
 * Sends to one topic with at most one produce request in flight: records given while one is in
 * flight go together in the next (write corking). The shared producer is idempotent with one
 * request in flight, so concurrent sends queued behind each other one round trip at a time;
 * corked, a burst costs a round trip or two whatever its size. Each send resolves once its
 * records are acknowledged, with their offsets when it named their partitions.
 */
class CorkedTopic {
  private queue: Array<{
    readonly records: readonly Outgoing[];
    readonly resolve: (offsets: number[]) => void;
    readonly reject: (err: unknown) => void;
  }> = [];
  private flushing = false;

  constructor(
    private readonly producer: SharedProducer,
    private readonly topic: string,
  ) {}

  send(records: readonly Outgoing[]): Promise<number[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ records, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.queue.length > 0) {
      let count = 0;
      let take = 0;
      while (
        take < this.queue.length &&
        (take === 0 || count + this.queue[take]!.records.length <= MAX_CORKED_RECORDS)
      ) {
        count += this.queue[take]!.records.length;
        take++;
      }
      const batch = this.queue.splice(0, take);
      try {
        const producer = await this.producer.get();
        const results = await producer.send({
          topic: this.topic,
          acks: -1,
          messages: batch.flatMap(({ records }) => records),
        });
        // One result per partition with the base offset of its records, which keep their order.
        const next = new Map<number, number>();
        for (const result of results) {
          next.set(result.partition, Number(result.baseOffset ?? result.offset ?? 0));
        }
        for (const { records, resolve } of batch) {
          resolve(
            records.map((r) => {
              if (r.partition === undefined) return -1;
              const offset = next.get(r.partition) ?? 0;
              next.set(r.partition, offset + 1);
              return offset;
            }),
          );
        }
      } catch (err) {
        for (const { reject } of batch) reject(err);
      }
    }
    this.flushing = false;
  }
}

export interface KafkaLogOptions {
  readonly kafka: Kafka;
  readonly topics: TopicNames;
  readonly log: Logger;
  /** Consumer-group session timeout of projectors, in ms. Default 30000. */
  readonly sessionTimeoutMs?: number;
}

/** The commands log on Kafka. */
export class KafkaCommandLog implements CommandLog {
  readonly topic: string;
  private readonly producer: SharedProducer;
  private readonly commands: CorkedTopic;
  private admin: Admin | null = null;
  private partitions: number | null = null;
  private readonly consumers = new Set<KafkaLogConsumer>();

  constructor(private readonly options: KafkaLogOptions) {
    this.topic = options.topics.commands;
    this.producer = new SharedProducer(options.kafka);
    this.commands = new CorkedTopic(this.producer, this.topic);
  }

  private async getAdmin(): Promise<Admin> {
    if (!this.admin) {
      const admin = this.options.kafka.admin();
      await admin.connect();
      this.admin = admin;
    }
    return this.admin;
  }

  async partitionCount(): Promise<number> {
    if (this.partitions !== null) return this.partitions;
    const admin = await this.getAdmin();
    const meta = await admin.fetchTopicMetadata({ topics: [this.topic] });
    const count = meta.topics[0]?.partitions.length ?? 0;
    if (count === 0) {
      throw new Error(`topic ${this.topic} does not exist; run "minipush topics" first`);
    }
    this.partitions = count;
    return count;
  }

  async append(records: readonly AppendRecord[]): Promise<LogPosition[]> {
    if (records.length === 0) return [];
    const offsets = await this.commands.send(
      records.map((r) => ({
        partition: r.partition,
        key: r.key,
        value: r.value,
        ...(r.headers ? { headers: { ...r.headers } } : {}),
      })),
    );
    return records.map((r, i) => ({ partition: r.partition, offset: offsets[i]! }));
  }

  async deadLetter(letters: readonly DeadLetter[]): Promise<void> {
    if (letters.length === 0) return;
    const producer = await this.producer.get();
    const now = String(Date.now());
    await producer.send({
      topic: this.options.topics.deadLetters,
      acks: -1,
      messages: letters.map(({ record, reason, field }) => ({
        key: record.key,
        value: record.value,
        headers: {
          ...record.headers,
          [HEADERS.deadLetterReason]: reason,
          ...(field ? { [HEADERS.deadLetterField]: field } : {}),
          [HEADERS.deadLetterSource]: `${this.topic}:${record.partition}:${record.offset}`,
          [HEADERS.deadLetterTime]: now,
        },
      })),
    });
  }

  consume(options: ConsumeOptions): LogConsumer {
    const consumer = new KafkaLogConsumer(this.options, this.topic, options);
    this.consumers.add(consumer);
    consumer.start();
    return {
      ready: () => consumer.ready(),
      stop: async () => {
        this.consumers.delete(consumer);
        await consumer.stop();
      },
      isMember: () => consumer.isMember(),
    };
  }

  async endOffsets(): Promise<number[]> {
    const admin = await this.getAdmin();
    const offsets = await admin.fetchTopicOffsets(this.topic);
    const out: number[] = [];
    for (const o of offsets) out[o.partition] = Number(o.high);
    return out;
  }

  async startOffsets(): Promise<number[]> {
    const admin = await this.getAdmin();
    const offsets = await admin.fetchTopicOffsets(this.topic);
    const out: number[] = [];
    for (const o of offsets) out[o.partition] = Number(o.low);
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.consumers].map((c) => c.stop()));
    this.consumers.clear();
    await this.producer.close();
    await this.admin?.disconnect();
    this.admin = null;
  }
}

/**
 * A consumer-group member whose read positions come from the caller (the projector keeps them
 * in the database), not from Kafka's committed offsets, which are only advisory here.
 */
class KafkaLogConsumer {
  private readonly consumer: Consumer;
  private readonly positions = new Map<number, number>();
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
      retry: { initialRetryTime: 100, maxRetryTime: 5000, retries: 20 },
    });
    this.joined = new Promise((resolve, reject) => {
      this.markJoined = resolve;
      this.failJoined = reject;
    });
    this.joined.catch(() => undefined);
    this.consumer.on(this.consumer.events.GROUP_JOIN, (event) => {
      // A new generation may have moved partitions: forget positions, ask again per partition.
      this.positions.clear();
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
        autoCommit: true,
        autoCommitInterval: 5000,
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
            payload.resolveOffset(String(last));
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
      this.member = false;
      // disconnect() waits for the batch in hand, commits, and leaves the group.
      await this.consumer.disconnect().catch((err: unknown) => {
        this.log.warn({ err }, 'consumer disconnect failed');
      });
    })();
    return this.stopping;
  }
}

export interface BroadcastOptions {
  readonly kafka: Kafka;
  readonly topic: string;
  /** A group of its own, so this subscriber reads every partition. */
  readonly groupId: string;
  readonly log: Logger;
  readonly onMessages: (messages: readonly KafkaMessage[]) => void;
}

/**
 * Reads every record appended to a topic from now on, as one member of a group of its own (a
 * broadcast); the group is deleted on close so they do not pile up on the brokers.
 */
export async function subscribeFromNow(options: BroadcastOptions): Promise<Subscription> {
  const { kafka, groupId } = options;
  const log = options.log.child({ component: 'broadcast', topic: options.topic });
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: 30_000,
    heartbeatInterval: 3000,
    maxWaitTimeInMs: 250,
    allowAutoTopicCreation: false,
  });
  // Start exactly at the end offsets as of now; "latest" would be resolved later, at the first
  // fetch, and could skip records appended in between.
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(options.topic).finally(() => admin.disconnect());
  let first = true;
  let active = false;
  consumer.on(consumer.events.CRASH, () => {
    active = false;
  });
  const joined = new Promise<void>((resolve) => {
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      active = true;
      if (!first) return;
      first = false;
      for (const partition of event.payload.memberAssignment[options.topic] ?? []) {
        const end = ends.find((o) => o.partition === partition);
        if (end) consumer.seek({ topic: options.topic, partition, offset: end.high });
      }
      resolve();
    });
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [options.topic], fromBeginning: false });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: true,
    partitionsConsumedConcurrently: 8,
    eachBatch: ({ batch }) => {
      options.onMessages(batch.messages);
      return Promise.resolve();
    },
  });
  await joined;
  let closed = false;
  return {
    isActive: () => active && !closed,
    close: async () => {
      if (closed) return;
      closed = true;
      await consumer.disconnect();
      const cleanup = kafka.admin();
      try {
        await cleanup.connect();
        await cleanup.deleteGroups([groupId]);
      } catch (err) {
        log.debug({ err }, 'could not delete broadcast group');
      } finally {
        await cleanup.disconnect();
      }
    },
  };
}

/** Head-seq notifications on a compacted topic keyed by uid; each subscriber reads all of it. */
export class KafkaChangeFeed implements ChangeFeed {
  private readonly producer: SharedProducer;
  private readonly heads: CorkedTopic;
  private readonly subscriptions = new Set<Subscription>();

  constructor(private readonly options: KafkaLogOptions & { readonly groupPrefix: string }) {
    this.producer = new SharedProducer(options.kafka);
    this.heads = new CorkedTopic(this.producer, options.topics.heads);
  }

  async publish(changes: readonly HeadChange[]): Promise<void> {
    if (changes.length === 0) return;
    await this.heads.send(
      changes.map((change) => ({
        key: String(change.uid),
        value: encodeHeadChange(change),
        ...(change.traceparent ? { headers: { [HEADERS.traceparent]: change.traceparent } } : {}),
      })),
    );
  }

  async subscribe(onChanges: (changes: readonly HeadChange[]) => void): Promise<Subscription> {
    const subscription = await subscribeFromNow({
      kafka: this.options.kafka,
      topic: this.options.topics.heads,
      groupId: `${this.options.groupPrefix}-${randomUUID()}`,
      log: this.options.log,
      onMessages: (messages) => {
        const changes: HeadChange[] = [];
        for (const message of messages) {
          const change = decodeHeadChange(message.value);
          if (change) changes.push(change);
        }
        if (changes.length > 0) onChanges(changes);
      },
    });
    const tracked: Subscription = {
      close: async () => {
        this.subscriptions.delete(tracked);
        await subscription.close();
      },
      isActive: () => subscription.isActive?.() ?? true,
    };
    this.subscriptions.add(tracked);
    return tracked;
  }

  async close(): Promise<void> {
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    await this.producer.close();
  }
}
