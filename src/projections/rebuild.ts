import type { Backend } from '../backend.js';
import type { CommandLimits } from '../commands/command-record.js';
import type { ChangeFeed } from '../log/log.js';
import type { Logger } from '../logger.js';
import { migrateDown, migrateLatest } from '../store/database.js';
import { renewEpoch } from './checkpoints.js';
import { Projector, projectorGroup } from './projector.js';

/** The rebuild would not give the same projection, or would fight a running projector. */
export class RebuildRefused extends Error {
  override readonly name = 'RebuildRefused';
}

export interface RebuildOptions {
  readonly backend: Backend;
  readonly limits: CommandLimits;
  readonly logger: Logger;
  readonly now?: () => number;
  /** How often progress is logged, in ms. Default 5000. */
  readonly progressIntervalMs?: number;
}

export interface RebuildResult {
  /** Per partition, the log's end when the rebuild started: the projection now stands there. */
  readonly endOffsets: readonly number[];
  readonly records: number;
  readonly deliveries: number;
  readonly durationMs: number;
  readonly deliveriesPerSecond: number;
}

/**
 * Hubs already know the heads a rebuild reproduces; replaying years of notifications to them
 * would only be noise.
 */
const silentFeed: ChangeFeed = {
  publish: () => Promise.resolve(),
  subscribe: () => Promise.resolve({ close: () => Promise.resolve() }),
  close: () => Promise.resolve(),
};

async function refuseIfProjectorsRun(backend: Backend): Promise<void> {
  if (!backend.kafka) return;
  const group = projectorGroup(backend.log.topic);
  const admin = backend.kafka.admin();
  await admin.connect();
  try {
    const { groups } = await admin.describeGroups([group]);
    const members = groups[0]?.members.length ?? 0;
    if (members > 0) {
      throw new RebuildRefused(
        `consumer group ${group} has ${members} live member(s): stop every projector first ` +
          '(a killed one leaves the group after the Kafka session timeout)',
      );
    }
  } finally {
    await admin.disconnect();
  }
}

async function deleteGroup(backend: Backend, group: string, logger: Logger): Promise<void> {
  if (!backend.kafka) return;
  const admin = backend.kafka.admin();
  await admin.connect();
  try {
    await admin.deleteGroups([group]);
  } catch (err) {
    logger.warn({ err, group }, 'could not delete the rebuild consumer group');
  } finally {
    await admin.disconnect();
  }
}

/**
 * Drops the read model and projects the whole commands log again, up to the end it had when the
 * rebuild started, so seqs and rows come out as the log defines them. Every projector must be
 * stopped first: one still running would write into the new tables from its old offsets. Uses a
 * consumer group of its own, so the projectors' group keeps its Kafka offsets (ours are in the
 * database anyway), and deletes it afterwards.
 */
export async function rebuildProjections(options: RebuildOptions): Promise<RebuildResult> {
  const { backend, logger } = options;
  const log = backend.log;
  const partitions = await log.partitionCount();
  const starts = await log.startOffsets();
  const lost = starts.flatMap((start, partition) => (start > 0 ? [`${partition}:${start}`] : []));
  if (lost.length > 0) {
    throw new RebuildRefused(
      `the commands log no longer starts at offset 0 (partition:first offset ${lost.join(', ')}); ` +
        'retention deleted records, so a rebuild would lose their events and shift seqs',
    );
  }
  await refuseIfProjectorsRun(backend);
  const ends = await log.endOffsets();

  await migrateDown(backend.db);
  await migrateLatest(backend.db);
  logger.info({ endOffsets: ends }, 'read model dropped and recreated; replaying the log');

  const started = performance.now();
  const applied: number[] = Array.from({ length: partitions }, () => 0);
  let records = 0;
  let deliveries = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const check = () => {
    if (applied.every((next, partition) => next >= (ends[partition] ?? 0))) finish();
  };
  check();

  const group = `${log.topic}.rebuild-${Date.now()}`;
  const projector = new Projector({
    db: backend.db,
    log,
    feed: silentFeed,
    limits: options.limits,
    logger,
    group,
    until: ends,
    ...(options.now ? { now: options.now } : {}),
    hooks: {
      onApplied: (partition, next) => {
        applied[partition] = next;
        check();
      },
      onBatch: (info) => {
        records += info.records;
        deliveries += info.deliveries;
      },
    },
  });
  const progress = setInterval(() => {
    logger.info({ applied, endOffsets: ends, deliveries }, 'rebuilding');
  }, options.progressIntervalMs ?? 5000);
  progress.unref();
  try {
    await projector.start();
    await finished;
  } finally {
    clearInterval(progress);
    await projector.stop();
    await deleteGroup(backend, group, logger);
  }
  // Only now: a read cache that loaded rows while the replay ran (unannounced) forgets them.
  await renewEpoch(backend.db);
  const durationMs = performance.now() - started;
  return {
    endOffsets: ends,
    records,
    deliveries,
    durationMs,
    deliveriesPerSecond: durationMs > 0 ? (deliveries * 1000) / durationMs : 0,
  };
}
