import { Kafka, Partitioners, type Producer } from 'kafkajs';
import { commandLimits, loadConfig } from '../config.js';
import { topicNames } from '../log/topics.js';
import { toAppendRecords } from './command-writer.js';
import {
  validateCommand,
  type CommandLimits,
  type CommandRecord,
  type MarkTarget,
} from './command-record.js';
import { decidePublish, type PublishInput } from './publish.js';

// What callers catch and build commands with, importable from `minipush/producer` alone.
export { InvalidCommand, type CommandLimits, type CommandRecord } from './command-record.js';
export type { PublishInput } from './publish.js';
import { decideMarkRead } from './mark-read.js';
import { decideMarkReadUpTo } from './mark-read-up-to.js';
import { decideMarkUnread } from './mark-unread.js';
import { decideMarkSeen } from './mark-seen.js';
import { decideArchive } from './archive.js';
import { decideUnarchive } from './unarchive.js';

export interface CommandProducerOptions {
  /** Kafka bootstrap brokers, e.g. `['kafka-1:9092']`. */
  readonly brokers: readonly string[];
  /** Topic prefix of the MiniPush deployment. Default `minipush`. */
  readonly topicPrefix?: string;
  readonly clientId?: string;
  /** Limits to check before producing; defaults match the service's defaults. */
  readonly limits?: Partial<CommandLimits>;
  /** An existing kafkajs client to reuse instead of creating one. */
  readonly kafka?: Kafka;
}

/** The service's own defaults, so what passes here passes there. */
const DEFAULT_LIMITS: CommandLimits = commandLimits(loadConfig({ env: {} }));

/**
 * Produces MiniPush commands straight to Kafka from a business server, validated and routed
 * exactly as the REST API does it.
 *
 * ```ts
 * const producer = await createCommandProducer({ brokers: ['127.0.0.1:9092'] });
 * await producer.publish({ id: 'order-42-shipped', to: [7], body: { text: 'Shipped' } });
 * await producer.close();
 * ```
 */
export async function createCommandProducer(options: CommandProducerOptions) {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const kafka =
    options.kafka ??
    new Kafka({ clientId: options.clientId ?? 'minipush-producer', brokers: [...options.brokers] });
  const topic = topicNames(options.topicPrefix ?? 'minipush').commands;
  const admin = kafka.admin();
  await admin.connect();
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  await admin.disconnect();
  const partitions = meta.topics[0]?.partitions.length ?? 0;
  if (partitions === 0) throw new Error(`topic ${topic} does not exist`);
  const producer: Producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();

  async function send(...commands: CommandRecord[]): Promise<void> {
    const messages = commands.flatMap((command) =>
      toAppendRecords(validateCommand(command, limits), partitions).map((r) => ({
        partition: r.partition,
        key: r.key,
        value: r.value,
      })),
    );
    await producer.send({ topic, acks: -1, messages });
  }

  return {
    /** Publishes an event; returns its id (generated when not given). */
    async publish(input: PublishInput): Promise<string> {
      const command = decidePublish(input, limits, Date.now());
      await send(command);
      return command.id;
    },
    /**
     * Publishes many events in one produce request: at high rates far faster than one `publish`
     * per event, which waits a broker round trip each. All are validated before any is sent;
     * returns their ids in order.
     */
    async publishMany(inputs: readonly PublishInput[]): Promise<string[]> {
      const now = Date.now();
      const commands = inputs.map((input) => decidePublish(input, limits, now));
      if (commands.length > 0) await send(...commands);
      return commands.map((command) => command.id);
    },
    // async, so an invalid command rejects like publish's instead of throwing synchronously.
    markRead: async (uid: number, seqs: number[]) => send(decideMarkRead(uid, seqs, limits)),
    markReadUpTo: async (uid: number, upTo: number) => send(decideMarkReadUpTo(uid, upTo)),
    markUnread: async (uid: number, seqs: number[]) => send(decideMarkUnread(uid, seqs, limits)),
    /** Seen, archived and unarchived marks take `{ seqs }` or `{ upTo }`, like REST. */
    markSeen: async (uid: number, target: MarkTarget) => send(decideMarkSeen(uid, target, limits)),
    archive: async (uid: number, target: MarkTarget) => send(decideArchive(uid, target, limits)),
    unarchive: async (uid: number, target: MarkTarget) =>
      send(decideUnarchive(uid, target, limits)),
    close: () => producer.disconnect(),
  };
}

export type CommandProducer = Awaited<ReturnType<typeof createCommandProducer>>;
