import { randomUUID } from 'node:crypto';
import type { HeadChange } from '../domain/head-state.js';
import { subscribeFromNow } from './kafka-broadcast.js';
import type { KafkaLogOptions } from './kafka-consumer.js';
import { CorkedTopic, SharedProducer } from './kafka-producer.js';
import {
  HEADERS,
  decodeHeadChange,
  encodeHeadChange,
  type ChangeFeed,
  type Subscription,
} from './log.js';

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
