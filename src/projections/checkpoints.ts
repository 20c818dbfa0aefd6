import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import type { Fence } from './statements.js';
import { typed } from '../store/database.js';

/**
 * Where the projection of each commands partition stands, kept in the database with the rows
 * it produced (`projector_offsets`, `projector_forwards`, `minipush_meta`). Every reader and
 * writer of those tables goes through this module.
 */

/** One partition's checkpoint as a projector loads it. */
export interface Checkpoint {
  /** First offset not yet applied. */
  nextOffset: number;
  /** Records from here to nextOffset may still owe their head notification. */
  notifiedOffset: number;
  /** Highest source offset applied per source partition, for re-routed records. */
  forwarded: Map<number, number>;
}

/** Another projector committed this partition since we loaded it: our view is stale. */
export class FencedError extends Error {
  override readonly name = 'FencedError';
  /** Retrying with the same view fails the same way: reload first. */
  readonly canRetry = false;
}

/** A partition's checkpoint, created at offset 0 for a partition never projected. */
export async function loadCheckpoint(
  db: Knex,
  topic: string,
  partition: number,
  now: number,
): Promise<Checkpoint> {
  await db('projector_offsets')
    .insert({
      topic,
      log_partition: partition,
      next_offset: 0,
      notified_offset: 0,
      updated_at: now,
    })
    .onConflict(['topic', 'log_partition'])
    .ignore();
  const row = await typed<{ next_offset: number | string; notified_offset: number | string }>(
    db('projector_offsets')
      .where({ topic, log_partition: partition })
      .first('next_offset', 'notified_offset'),
  );
  const marks = await typed<Array<{ source_partition: number; source_offset: number | string }>>(
    db('projector_forwards')
      .where({ topic, log_partition: partition })
      .select('source_partition', 'source_offset'),
  );
  return {
    nextOffset: Number(row.next_offset),
    notifiedOffset: Number(row.notified_offset),
    forwarded: new Map(marks.map((m) => [m.source_partition, Number(m.source_offset)])),
  };
}

/** How a committed slice moves a partition's checkpoint. */
export interface CheckpointMove {
  readonly topic: string;
  readonly partition: number;
  /** The next offset the projector loaded; the commit is fenced on it. */
  readonly expectedNext: number;
  readonly nextOffset: number;
  /** Where this slice began: records from here may owe their notification after a crash. */
  readonly notifiedOffset: number;
  /** Highest origin offset applied per source partition in this slice. */
  readonly forwardMarks: ReadonlyMap<number, number>;
  readonly now: number;
}

/**
 * The statements that move the checkpoint inside the slice's transaction, built on `q` (the
 * transaction, or the store when the statements travel as text). The compare-and-set must be
 * the transaction's first statement (see `FencedCommits`): it locks the partition's row
 * until the commit, so a stale projector (a rebalance overlapped) changes no row and gets
 * {@link FencedError}.
 */
export function checkpointStatements(
  db: Knex,
  q: Knex,
  move: CheckpointMove,
): { fence: Fence; statements: Knex.QueryBuilder[] } {
  const { topic, partition } = move;
  const fence: Fence = {
    // MySQL: ROW_COUNT() is what the compare-and-set changed. When it changed nothing, this
    // inserts the partition's row twice, and the duplicate key (whether or not the row exists)
    // ends the round trip before anything after it runs, the COMMIT included.
    unlessChanged: q.raw(
      'INSERT INTO projector_offsets (topic, log_partition, next_offset, notified_offset, updated_at) ' +
        'SELECT ?, ?, 0, 0, 0 FROM (SELECT 1 AS n UNION ALL SELECT 2) AS twice WHERE ROW_COUNT() = 0',
      [topic, partition],
    ),
    statement: q('projector_offsets')
      .where({ topic, log_partition: partition, next_offset: move.expectedNext })
      .update({
        next_offset: move.nextOffset,
        notified_offset: move.notifiedOffset,
        updated_at: move.now,
      }),
    moved: async () => {
      // A plain read of the committed row: it does not wait for the slice's own lock.
      const row = await typed<{ next_offset: number | string } | undefined>(
        db('projector_offsets').where({ topic, log_partition: partition }).first('next_offset'),
      );
      return Number(row?.next_offset) !== move.expectedNext;
    },
    message: `partition ${partition} moved past offset ${move.expectedNext}: another projector owns it`,
  };
  const statements: Knex.QueryBuilder[] = [];
  if (move.forwardMarks.size > 0) {
    statements.push(
      q('projector_forwards')
        .insert(
          [...move.forwardMarks].map(([source, offset]) => ({
            topic,
            log_partition: partition,
            source_partition: source,
            source_offset: offset,
          })),
        )
        .onConflict(['topic', 'log_partition', 'source_partition'])
        .merge(['source_offset']),
    );
  }
  return { fence, statements };
}

/**
 * Records that every commit of the partition up to `offset` is announced on the heads stream,
 * for an idle partition (a busy one records it with its next commit). Only while the partition
 * still stands there: a later commit has recorded as much, or soon will.
 */
export async function confirmNotified(
  db: Knex,
  topic: string,
  partition: number,
  offset: number,
): Promise<void> {
  await db('projector_offsets')
    .where({ topic, log_partition: partition, next_offset: offset })
    .andWhere('notified_offset', '<', offset)
    .update({ notified_offset: offset });
}

/** Per partition, the next offset committed (whichever projector owns it). */
export async function appliedOffsets(db: Knex, topic: string): Promise<Map<number, number>> {
  const rows = await typed<Array<{ log_partition: number; next_offset: number | string }>>(
    db('projector_offsets').where({ topic }).select('log_partition', 'next_offset'),
  );
  return new Map(rows.map((row) => [row.log_partition, Number(row.next_offset)]));
}

/**
 * Seqs depend on uid → partition routing, so the partition count may never change under a
 * projection: the first projector records it, later ones check it.
 */
export async function checkPartitionCount(
  db: Knex,
  topic: string,
  partitions: number,
): Promise<void> {
  const name = `partitions:${topic}`;
  const row = await typed<{ value: string } | undefined>(
    db('minipush_meta').where({ name }).first('value'),
  );
  if (!row) {
    await db('minipush_meta')
      .insert({ name, value: String(partitions) })
      .onConflict('name')
      .ignore();
    return;
  }
  if (Number(row.value) !== partitions) {
    throw new Error(
      `${topic} has ${partitions} partitions but the projections were built with ${row.value}; ` +
        'uids would move between partitions. Restore the partition count or rebuild into a new database.',
    );
  }
}

/** The read model's identity (see migrations/20261203-003-read-model-epoch.ts). */
export async function readEpoch(db: Knex): Promise<string> {
  const row = await typed<{ value: string } | undefined>(
    db('minipush_meta').where({ name: 'epoch' }).first('value'),
  );
  if (!row) throw new Error('minipush_meta holds no epoch: run minipush migrate');
  return row.value;
}

/** A new identity for the read model, once a rebuild has made it anew. */
export async function renewEpoch(db: Knex): Promise<string> {
  const epoch = randomBytes(6).toString('base64url');
  await db('minipush_meta').where({ name: 'epoch' }).update({ value: epoch });
  return epoch;
}
