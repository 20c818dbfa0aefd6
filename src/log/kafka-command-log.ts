import type { Admin } from 'kafkajs';
import { KafkaLogConsumer, type KafkaLogOptions } from './kafka-consumer.js';
import { CorkedTopic, SharedProducer } from './kafka-producer.js';
import {
  deadLetterHeaders,
  ownedConsumer,
  type AppendRecord,
  type CommandLog,
  type ConsumeOptions,
  type DeadLetter,
  type LogConsumer,
  type LogPosition,
} from './log.js';
import { fetchTopicOffsets } from './topics.js';

export type { KafkaLogOptions } from './kafka-consumer.js';

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
    const now = Date.now();
    await producer.send({
      topic: this.options.topics.deadLetters,
      acks: -1,
      messages: letters.map((letter) => ({
        key: letter.record.key,
        value: letter.record.value,
        headers: deadLetterHeaders(letter, this.topic, now),
      })),
    });
  }

  consume(options: ConsumeOptions): LogConsumer {
    return ownedConsumer(this.consumers, new KafkaLogConsumer(this.options, this.topic, options));
  }

  async endOffsets(): Promise<number[]> {
    const admin = await this.getAdmin();
    const offsets = await fetchTopicOffsets(admin, this.topic);
    const out: number[] = [];
    for (const o of offsets) out[o.partition] = Number(o.high);
    return out;
  }

  async startOffsets(): Promise<number[]> {
    const admin = await this.getAdmin();
    const offsets = await fetchTopicOffsets(admin, this.topic);
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
