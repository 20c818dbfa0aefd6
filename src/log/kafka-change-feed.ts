import { randomUUID } from 'node:crypto';
import type { FeedPosition, HeadChange } from '../domain/head-state.js';
import { subscribeFromNow } from './kafka-broadcast.js';
import type { KafkaLogOptions } from './kafka-consumer.js';
import { CorkedTopic, SharedProducer, type Outgoing } from './kafka-producer.js';
import {
  HEAD_CHANGES_PER_RECORD,
  decodeHeadsRecord,
  encodeFeedPosition,
  feedPositionKey,
  headChangesKey,
  headChangesRecords,
  type ChangeFeed,
  type ChangeListener,
  type SubscribeOptions,
  type Subscription,
} from './log.js';

/**
 * Head-seq notifications on a compacted topic, batched per projector partition and keyed by it;
 * each subscriber reads all of it.
 */
export class KafkaChangeFeed implements ChangeFeed {
  private readonly producer: SharedProducer;
  private readonly heads: CorkedTopic;
  private readonly subscriptions = new Set<Subscription>();

  constructor(private readonly options: KafkaLogOptions & { readonly groupPrefix: string }) {
    this.producer = new SharedProducer(options.kafka);
    this.heads = new CorkedTopic(this.producer, options.topics.heads);
  }

  /**
   * A projector's changes and position go to the heads partition numbered like its commands
   * partition (where the uids' keys land anyway), in one request, the position last. The changes
   * travel {@link HEAD_CHANGES_PER_RECORD} to a record: a slice costs a few records, not one per
   * user. Each change carries its own trace context in the record's JSON.
   */
  async publish(changes: readonly HeadChange[], position?: FeedPosition): Promise<void> {
    if (changes.length === 0 && !position) return;
    const records: Outgoing[] = headChangesRecords(changes).map((value, i) =>
      position
        ? { partition: position.partition, key: headChangesKey(position.partition), value }
        : // Without a position, by a user's key: the partition of its commands.
          { key: String(changes[i * HEAD_CHANGES_PER_RECORD]!.uid), value },
    );
    if (position) {
      records.push({
        partition: position.partition,
        key: feedPositionKey(position.partition),
        value: encodeFeedPosition(position),
      });
    }
    await this.heads.send(records);
  }

  async subscribe(
    onChanges: ChangeListener,
    options: SubscribeOptions = {},
  ): Promise<Subscription> {
    const subscription = await subscribeFromNow({
      kafka: this.options.kafka,
      topic: this.options.topics.heads,
      groupId: `${this.options.groupPrefix}-${randomUUID()}`,
      log: this.options.log,
      ...(options.onGap ? { onGap: options.onGap } : {}),
      onMessages: (messages) => {
        const changes: HeadChange[] = [];
        const positions: FeedPosition[] = [];
        for (const message of messages) {
          const record = decodeHeadsRecord(message.value);
          if (!record) continue;
          if ('changes' in record) changes.push(...record.changes);
          else positions.push(record.position);
        }
        if (changes.length > 0 || positions.length > 0) onChanges(changes, positions);
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
