import { Kafka, logLevel as KafkaLogLevel, type LogEntry } from 'kafkajs';
import type { Logger } from '../logger.js';

const LEVELS: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [KafkaLogLevel.ERROR]: 'error',
  [KafkaLogLevel.WARN]: 'warn',
  [KafkaLogLevel.INFO]: 'info',
  [KafkaLogLevel.DEBUG]: 'debug',
};

export interface KafkaClientOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  /** Retries of a failed request; every producer and consumer of the client inherits it. */
  readonly retries: number;
  readonly log: Logger;
}

/** A kafkajs client whose own logs go through pino at warn level and above. */
export function createKafka(options: KafkaClientOptions): Kafka {
  const log = options.log.child({ component: 'kafkajs' });
  return new Kafka({
    clientId: options.clientId,
    brokers: [...options.brokers],
    connectionTimeout: 3000,
    requestTimeout: 30_000,
    retry: { initialRetryTime: 100, maxRetryTime: 5000, retries: options.retries },
    logLevel: KafkaLogLevel.WARN,
    logCreator:
      () =>
      ({ level, label, log: entry }: LogEntry) => {
        const { message, ...extra } = entry;
        // We bound producer retries on purpose (callers get an error, not a hang); the idempotent
        // producer still dedupes the retries it makes.
        if (message.startsWith('Limiting retries for the idempotent producer')) return;
        log[LEVELS[level] ?? 'info']({ label, ...extra }, message);
      },
  });
}
