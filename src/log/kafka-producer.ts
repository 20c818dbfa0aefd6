import kafkajs, { type IHeaders, type Kafka, type Producer } from 'kafkajs';

// kafkajs spreads its error classes into module.exports, which Node's ESM named-export detection misses.
const { Partitioners } = kafkajs;

/** Lazily connected producer shared by everything one process sends. */
export class SharedProducer {
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
export class CorkedTopic {
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
