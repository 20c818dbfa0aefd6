import { randomUUID } from 'node:crypto';
import { Partitioners, type Kafka, type Producer } from 'kafkajs';
import { subscribeFromNow } from '../log/kafka-broadcast.js';
import type { Subscription } from '../log/log.js';
import type { Logger } from '../logger.js';
import type { SessionRecord } from './session-quota.js';

/** Carries session records between hubs, in one order per uid. */
export interface SessionBus {
  publish(record: SessionRecord): Promise<void>;
  /** Delivers records published after the returned promise resolves, in order per key. */
  subscribe(onRecords: (records: readonly SessionRecord[]) => void): Promise<Subscription>;
  close(): Promise<void>;
}

function decodeRecord(value: Buffer | null): SessionRecord | null {
  if (!value) return null;
  try {
    const parsed = JSON.parse(value.toString('utf8')) as Partial<SessionRecord>;
    if (typeof parsed.type !== 'string' || typeof parsed.hubId !== 'string') return null;
    return parsed as SessionRecord;
  } catch {
    return null;
  }
}

/** Session records on the `<prefix>.sessions` topic, keyed by uid so each uid has one order. */
export class KafkaSessionBus implements SessionBus {
  private producer: Producer | null = null;
  private readonly subscriptions = new Set<Subscription>();
  private pending: Array<{
    readonly record: SessionRecord;
    readonly resolve: () => void;
    readonly reject: (err: unknown) => void;
  }> = [];
  /** The send in flight; the next batch waits for it, so records leave in publish order. */
  private sending: Promise<void> = Promise.resolve();
  private flushScheduled = false;

  constructor(
    private readonly kafka: Kafka,
    private readonly topic: string,
    private readonly groupPrefix: string,
    private readonly log: Logger,
  ) {}

  /**
   * Records are corked: all published while a send is in flight, or in the same event-loop
   * turn, go in the next single produce request. A burst of thousands of session opens is a
   * handful of requests instead of one request (and its buffers) per session.
   */
  publish(record: SessionRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ record, resolve, reject });
      if (this.flushScheduled) return;
      this.flushScheduled = true;
      this.sending = this.sending
        .then(() => new Promise((r) => setImmediate(r)))
        .then(() => this.flush());
    });
  }

  private async flush(): Promise<void> {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    try {
      if (!this.producer) {
        const producer = this.kafka.producer({
          allowAutoTopicCreation: false,
          createPartitioner: Partitioners.DefaultPartitioner,
        });
        await producer.connect();
        this.producer = producer;
      }
      await this.producer.send({
        topic: this.topic,
        acks: 1,
        messages: batch.map(({ record }) => ({
          key: 'uid' in record ? String(record.uid) : record.hubId,
          value: JSON.stringify(record),
        })),
      });
      for (const { resolve } of batch) resolve();
    } catch (err) {
      for (const { reject } of batch) reject(err);
    }
  }

  async subscribe(onRecords: (records: readonly SessionRecord[]) => void): Promise<Subscription> {
    const subscription = await subscribeFromNow({
      kafka: this.kafka,
      topic: this.topic,
      groupId: `${this.groupPrefix}-${randomUUID()}`,
      log: this.log,
      onMessages: (messages) => {
        const records: SessionRecord[] = [];
        for (const message of messages) {
          const record = decodeRecord(message.value);
          if (record) records.push(record);
        }
        if (records.length > 0) onRecords(records);
      },
    });
    this.subscriptions.add(subscription);
    return subscription;
  }

  async close(): Promise<void> {
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    this.subscriptions.clear();
    await this.sending;
    await this.producer?.disconnect();
    this.producer = null;
  }
}

/** In-process bus for a single hub (the embedded default). */
export class LocalSessionBus implements SessionBus {
  private readonly handlers = new Set<(records: readonly SessionRecord[]) => void>();

  publish(record: SessionRecord): Promise<void> {
    // Delivered on a later tick, like a real log, so callers never re-enter themselves.
    queueMicrotask(() => {
      for (const handler of [...this.handlers]) handler([record]);
    });
    return Promise.resolve();
  }

  subscribe(onRecords: (records: readonly SessionRecord[]) => void): Promise<Subscription> {
    this.handlers.add(onRecords);
    return Promise.resolve({
      close: () => {
        this.handlers.delete(onRecords);
        return Promise.resolve();
      },
    });
  }

  close(): Promise<void> {
    this.handlers.clear();
    return Promise.resolve();
  }
}
