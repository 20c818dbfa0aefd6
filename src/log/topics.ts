import type { Admin, ITopicConfig } from 'kafkajs';
import { withRetry } from '../retry.js';

export interface TopicNames {
  /** The write log: published events and read-mark commands, keyed by uid. */
  readonly commands: string;
  /** Compacted head-seq notifications for hubs, keyed by uid. */
  readonly heads: string;
  /** Records the projector could not apply, with the reason in headers. */
  readonly deadLetters: string;
  /** Hub session announcements and heartbeats for the cluster-wide session quota. */
  readonly sessions: string;
}

export function topicNames(prefix: string): TopicNames {
  return {
    commands: `${prefix}.commands`,
    heads: `${prefix}.heads`,
    deadLetters: `${prefix}.dlq`,
    sessions: `${prefix}.sessions`,
  };
}

export interface TopicSettings {
  readonly topicPrefix: string;
  readonly partitions: number;
  readonly replicationFactor: number;
  readonly logRetentionMs: number;
}

const DAY = 86_400_000;

/** Every topic MiniPush uses, with the partitions and cleanup each one needs. */
export function topicSpecs(settings: TopicSettings): ITopicConfig[] {
  const names = topicNames(settings.topicPrefix);
  const replicationFactor = settings.replicationFactor;
  return [
    {
      topic: names.commands,
      numPartitions: settings.partitions,
      replicationFactor,
      configEntries: [
        { name: 'cleanup.policy', value: 'delete' },
        { name: 'retention.ms', value: String(settings.logRetentionMs) },
        { name: 'retention.bytes', value: '-1' },
        { name: 'message.timestamp.type', value: 'CreateTime' },
      ],
    },
    {
      topic: names.heads,
      numPartitions: settings.partitions,
      replicationFactor,
      configEntries: [
        { name: 'cleanup.policy', value: 'compact' },
        { name: 'segment.ms', value: String(DAY) },
        { name: 'min.cleanable.dirty.ratio', value: '0.5' },
      ],
    },
    {
      topic: names.deadLetters,
      numPartitions: 1,
      replicationFactor,
      configEntries: [
        { name: 'cleanup.policy', value: 'delete' },
        { name: 'retention.ms', value: String(30 * DAY) },
      ],
    },
    {
      topic: names.sessions,
      numPartitions: settings.partitions,
      replicationFactor,
      configEntries: [
        { name: 'cleanup.policy', value: 'delete' },
        { name: 'retention.ms', value: String(DAY) },
      ],
    },
  ];
}

/**
 * Creates missing topics and waits until their partitions have leaders; returns the names
 * created. Existing topics are left as they are. A broker that has just started answers with
 * retriable errors for a while, so this retries them.
 */
export async function ensureTopics(admin: Admin, settings: TopicSettings): Promise<string[]> {
  const specs = topicSpecs(settings);
  const names = specs.map((spec) => spec.topic);
  const created: string[] = [];
  await withRetry(async () => {
    const existing = new Set(await admin.listTopics());
    const missing = specs.filter((spec) => !existing.has(spec.topic));
    if (missing.length > 0) {
      await admin.createTopics({ topics: missing, waitForLeaders: true });
      created.push(...missing.map((spec) => spec.topic));
    }
    await admin.fetchTopicMetadata({ topics: names });
  }, SETTLING);
  return created;
}

/**
 * Retries for a broker that is still settling: retriable kafkajs errors (a partition whose
 * leader the broker does not know yet) and metadata not yet loaded, for about ten seconds.
 */
const SETTLING = {
  maxAttempts: 12,
  initialDelayMs: 200,
  maxDelayMs: 2000,
  canRetry: (err: unknown) =>
    (err as { retriable?: boolean }).retriable === true ||
    (err as Error).name === 'KafkaJSTopicMetadataNotLoaded',
} as const;

/**
 * A topic's offsets per partition. Right after a topic is made, a broker may still answer "not
 * the leader for that topic-partition" for a moment, which kafkajs' admin passes on.
 */
export function fetchTopicOffsets(
  admin: Admin,
  topic: string,
): ReturnType<Admin['fetchTopicOffsets']> {
  return withRetry(() => admin.fetchTopicOffsets(topic), SETTLING);
}
