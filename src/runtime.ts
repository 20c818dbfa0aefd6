import type { Config } from './config.js';
import { openBackend, type Backend } from './backend.js';
import type { Logger } from './logger.js';
import { Projector } from './projections/projector.js';
import { TtlCleaner } from './projections/ttl-cleaner.js';
import { ProjectionProgress } from './queries/projection-progress.js';
import { migrateLatest } from './store/database.js';
import { ensureTopics } from './log/topics.js';

/** A running MiniPush process: the roles it was asked for, over one backend. */
export interface Runtime {
  readonly backend: Backend;
  readonly progress: ProjectionProgress;
  readonly projector: Projector | null;
  readonly cleaner: TtlCleaner | null;
  /** Stops taking work, drains, commits and closes everything, in that order. */
  close(): Promise<void>;
}

export interface RuntimeOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Applies migrations and creates topics first (the embedded default always does). */
  readonly prepare?: boolean;
}

export function commandLimits(config: Config) {
  return {
    bodyLimitBytes: config.bodyLimitBytes,
    maxRecipients: config.maxRecipients,
    maxEventIdLength: config.maxEventIdLength,
    maxSeqsPerCommand: config.maxSeqsPerCommand,
  };
}

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

export async function startRuntime(options: RuntimeOptions): Promise<Runtime> {
  const { config, logger } = options;
  const backend = openBackend(config, logger);
  const closers: Array<() => Promise<void>> = [];
  try {
    if (options.prepare ?? backend.kind.log === 'embedded') {
      await prepareBackend(config, backend, logger);
    }
    const progress = new ProjectionProgress(backend.db, backend.log.topic);
    closers.push(() => Promise.resolve(progress.stop()));

    let projector: Projector | null = null;
    if (config.roles.includes('projector')) {
      projector = new Projector({
        db: backend.db,
        log: backend.log,
        feed: backend.feed,
        limits: commandLimits(config),
        logger,
        ...(options.now ? { now: options.now } : {}),
        hooks: { onApplied: (partition, next) => progress.noteApplied(partition, next) },
      });
      await projector.start();
      closers.push(() => projector!.stop());
    }

    let cleaner: TtlCleaner | null = null;
    if (config.roles.includes('cleaner')) {
      cleaner = new TtlCleaner({
        db: backend.db,
        ttlMs: config.eventTtlMs,
        batchSize: config.cleanerBatchSize,
        intervalMs: config.cleanerIntervalMs,
        logger,
        ...(options.now ? { now: options.now } : {}),
      });
      cleaner.start();
      closers.push(() => cleaner!.stop());
    }

    return {
      backend,
      progress,
      projector,
      cleaner,
      async close() {
        for (const close of closers.reverse()) {
          await close().catch((err: unknown) => logger.warn({ err }, 'error while closing'));
        }
        await backend.close();
      },
    };
  } catch (err) {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await backend.close().catch(() => undefined);
    throw err;
  }
}
