import type { Kafka } from 'kafkajs';
import type { Knex } from 'knex';
import type { Config } from './config.js';
import { EmbeddedCommandLog, LocalChangeFeed } from './log/embedded-log.js';
import { createKafka } from './log/kafka-client.js';
import { KafkaChangeFeed } from './log/kafka-change-feed.js';
import { KafkaCommandLog } from './log/kafka-command-log.js';
import type { ChangeFeed, CommandLog } from './log/log.js';
import { topicNames, type TopicNames } from './log/topics.js';
import { ensureTopics } from './log/topics.js';
import type { Logger } from './logger.js';
import { lockDataDir } from './store/data-dir-lock.js';
import { migrateLatest, openDatabase } from './store/database.js';

/** The store and the log a process works with, chosen by configuration. */
export interface Backend {
  readonly db: Knex;
  readonly log: CommandLog;
  readonly feed: ChangeFeed;
  readonly topics: TopicNames;
  /** Present when the log is Kafka. */
  readonly kafka: Kafka | null;
  readonly kind: { readonly log: 'kafka' | 'embedded'; readonly store: 'mysql' | 'sqlite' };
  close(): Promise<void>;
}

export interface OpenOptions {
  /**
   * Takes the data folder for this process when the backend keeps anything there (the
   * embedded log or the SQLite store): a second writer would corrupt the log. Default true;
   * read-only tools (`verify`) pass false.
   */
  readonly exclusive?: boolean;
}

/** Whether the configured backend keeps its data in `dataDir`. */
export function usesDataDir(config: Config): boolean {
  return config.kafkaBrokers.length === 0 || config.mysqlUrl === '';
}

export function openBackend(config: Config, logger: Logger, options: OpenOptions = {}): Backend {
  const lock =
    (options.exclusive ?? true) && usesDataDir(config) ? lockDataDir(config.dataDir) : null;
  try {
    const db = openDatabase({
      mysqlUrl: config.mysqlUrl,
      dataDir: config.dataDir,
      poolSize: config.mysqlPoolSize,
    });
    const topics = topicNames(config.topicPrefix);
    let log: CommandLog;
    let feed: ChangeFeed;
    let kafka: Kafka | null = null;
    if (config.kafkaBrokers.length > 0) {
      kafka = createKafka({
        brokers: config.kafkaBrokers,
        clientId: config.kafkaClientId,
        retries: config.kafkaRetries,
        log: logger,
      });
      log = new KafkaCommandLog({
        kafka,
        topics,
        log: logger,
        sessionTimeoutMs: config.kafkaSessionTimeoutMs,
      });
      feed = new KafkaChangeFeed({
        kafka,
        topics,
        log: logger,
        groupPrefix: `${config.topicPrefix}.feed`,
      });
    } else {
      log = new EmbeddedCommandLog({
        dataDir: config.dataDir,
        topic: topics.commands,
        deadLetterTopic: topics.deadLetters,
        partitions: config.partitions,
        retentionMs: config.logRetentionMs,
        log: logger,
      });
      feed = new LocalChangeFeed();
    }
    return {
      db,
      log,
      feed,
      topics,
      kafka,
      kind: {
        log: kafka ? 'kafka' : 'embedded',
        store: config.mysqlUrl === '' ? 'sqlite' : 'mysql',
      },
      async close() {
        try {
          await feed.close();
          await log.close();
          await db.destroy();
        } finally {
          lock?.release();
        }
      },
    };
  } catch (err) {
    lock?.release();
    throw err;
  }
}

/** Applies pending migrations and creates missing Kafka topics. */
export async function prepareBackend(
  config: Config,
  backend: Backend,
  logger: Logger,
): Promise<void> {
  const applied = await migrateLatest(backend.db);
  if (applied.length > 0) logger.info({ migrations: applied }, 'migrations applied');
  if (backend.kafka) {
    const admin = backend.kafka.admin();
    await admin.connect();
    try {
      const created = await ensureTopics(admin, config);
      if (created.length > 0) logger.info({ topics: created }, 'topics created');
    } finally {
      await admin.disconnect();
    }
  }
}
