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

export interface Outgoing {
  readonly partition?: number;
  readonly key: string | null;
  readonly value: Buffer;
  readonly headers?: IHeaders;
}

/** Records one produce request carries at most when corked; partitions share the request. */
const MAX_CORKED_RECORDS = 2000;

/**
 * Bytes of keys, values and headers one produce request carries at most. kafkajs puts a
 * request's records for one partition in one record batch, and the broker refuses a batch over
 * the topic's `max.message.bytes` (1 MB by default) with MESSAGE_TOO_LARGE: half of that leaves
 * room for the records' framing.
 */
const MAX_CORKED_BYTES = 512 * 1024;

/** Framing Kafka adds per record (lengths, deltas, attributes), roughly. */
const RECORD_OVERHEAD_BYTES = 32;

function sizeOf(record: Outgoing): number {
  let bytes = RECORD_OVERHEAD_BYTES + record.value.length + (record.key?.length ?? 0);
  for (const [name, value] of Object.entries(record.headers ?? {}))
    bytes += name.length + (typeof value === 'string' ? value.length : (value?.length ?? 0));
  return bytes;
}

interface PendingSend {
  readonly records: readonly Outgoing[];
  /** Records before this one went out in earlier requests. */
  next: number;
  readonly offsets: number[];
  readonly resolve: (offsets: number[]) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * Sends to one topic with at most one produce request in flight: records given while one is in
 * flight go together in the next (write corking). The shared producer is idempotent with one
 * request in flight, so concurrent sends queued behind each other one round trip at a time;
 * corked, a burst costs a round trip or two whatever its size. A request carries at most
 * {@link MAX_CORKED_RECORDS} records and {@link MAX_CORKED_BYTES}; a larger send goes out in
 * several, in order. Each send resolves once all its records are acknowledged, with their
 * offsets when it named their partitions; if a request fails, every send with records in it
 * fails (records of it sent before may be in the log: sends are retried whole).
 */
export class CorkedTopic {
  private queue: PendingSend[] = [];
  private flushing = false;

  constructor(
    private readonly producer: SharedProducer,
    private readonly topic: string,
  ) {}

  send(records: readonly Outgoing[]): Promise<number[]> {
    if (records.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.queue.push({ records, next: 0, offsets: [], resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  /** The records of the next request, from the sends at the front of the queue. */
  private nextRequest(): { sends: PendingSend[]; counts: number[]; messages: Outgoing[] } {
    const sends: PendingSend[] = [];
    const counts: number[] = [];
    const messages: Outgoing[] = [];
    let bytes = 0;
    for (const pending of this.queue) {
      let i = pending.next;
      while (i < pending.records.length) {
        const size = sizeOf(pending.records[i]!);
        const full = messages.length >= MAX_CORKED_RECORDS || bytes + size > MAX_CORKED_BYTES;
        if (messages.length > 0 && full) break;
        messages.push(pending.records[i]!);
        bytes += size;
        i++;
      }
      if (i > pending.next) {
        sends.push(pending);
        counts.push(i - pending.next);
      }
      if (i < pending.records.length) break;
    }
    return { sends, counts, messages };
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.queue.length > 0) {
      const { sends, counts, messages } = this.nextRequest();
      try {
        const producer = await this.producer.get();
        const results = await producer.send({ topic: this.topic, acks: -1, messages });
        // One result per partition with the base offset of its records, which keep their order.
        const next = new Map<number, number>();
        for (const result of results) {
          next.set(result.partition, Number(result.baseOffset ?? result.offset ?? 0));
        }
        for (const [index, pending] of sends.entries()) {
          const end = pending.next + counts[index]!;
          for (const record of pending.records.slice(pending.next, end)) {
            if (record.partition === undefined) {
              pending.offsets.push(-1);
              continue;
            }
            const offset = next.get(record.partition) ?? 0;
            next.set(record.partition, offset + 1);
            pending.offsets.push(offset);
          }
          pending.next = end;
          if (end === pending.records.length) {
            this.queue.splice(this.queue.indexOf(pending), 1);
            pending.resolve(pending.offsets);
          }
        }
      } catch (err) {
        for (const pending of sends) {
          this.queue.splice(this.queue.indexOf(pending), 1);
          pending.reject(err);
        }
      }
    }
    this.flushing = false;
  }
}
