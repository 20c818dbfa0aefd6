import type { Kafka, KafkaMessage } from 'kafkajs';
import type { Logger } from '../logger.js';
import type { Subscription } from './log.js';
import { fetchTopicOffsets } from './topics.js';

export interface BroadcastOptions {
  readonly kafka: Kafka;
  readonly topic: string;
  /** A group of its own, so this subscriber reads every partition. */
  readonly groupId: string;
  readonly log: Logger;
  readonly onMessages: (messages: readonly KafkaMessage[]) => void;
  /** The consumer restarted or rejoined: it resumes at the end, past records it never read. */
  readonly onGap?: () => void;
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
  const ends = await fetchTopicOffsets(admin, options.topic).finally(() => admin.disconnect());
  let first = true;
  let active = false;
  consumer.on(consumer.events.CRASH, () => {
    active = false;
    options.onGap?.();
  });
  const joined = new Promise<void>((resolve) => {
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      active = true;
      if (!first) {
        // Without committed offsets a rejoin starts at the end again.
        options.onGap?.();
        return;
      }
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
