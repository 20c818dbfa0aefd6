import type { Knex } from 'knex';
import type { Logger } from '../logger.js';
import { withRetry } from '../retry.js';
import { dialectOf } from '../store/database.js';
import { typed } from '../store/database.js';

/** Rows one pass deleted, by what they were. */
export interface CleanerPass {
  readonly deliveries: number;
  readonly events: number;
  readonly results: number;
  readonly conflicts: number;
}

export interface TtlCleanerOptions {
  readonly db: Knex;
  readonly ttlMs: number;
  readonly batchSize: number;
  readonly intervalMs: number;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Seen after each pass: rows deleted per table. */
  readonly onPass?: (deleted: CleanerPass) => void;
}

/**
 * Read-mark outcomes are kept this long after their command's log time, for `?wait=true`
 * answers (which wait seconds, not hours).
 */
const RESULT_RETENTION_MS = 3_600_000;

/**
 * Deletes expired events in small batches so no statement holds locks for long. Expiry follows
 * each delivery's log time, which never decreases within a user's feed, so every pass removes a
 * prefix of a feed and the floor seq advances with no hole above it. Read bitmaps are trimmed by
 * the projector the next time it writes them; the cleaner never writes them, so it cannot race a
 * read mark.
 */
export class TtlCleaner {
  private timer: NodeJS.Timeout | null = null;
  private pass: Promise<void> | null = null;
  private stopped = false;
  private readonly now: () => number;
  private readonly log: Logger;

  constructor(private readonly options: TtlCleanerOptions) {
    this.now = options.now ?? Date.now;
    this.log = options.logger.child({ component: 'ttl-cleaner' });
  }

  start(): void {
    this.stopped = false;
    const tick = () => {
      this.pass = this.runOnce()
        .then(() => undefined)
        .catch((err: unknown) => this.log.warn({ err }, 'cleaner pass failed; next pass retries'))
        .finally(() => {
          this.pass = null;
          if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs);
        });
    };
    this.timer = setTimeout(tick, Math.min(1000, this.options.intervalMs));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.pass;
  }

  /** One full pass; returns rows deleted. */
  async runOnce(): Promise<CleanerPass> {
    const cutoff = this.now() - this.options.ttlMs;
    // A pass deletes what had expired when it began: deliveries written meanwhile are the next
    // pass's, so a pass ends however fast the projector writes.
    const [newest] = await typed<Array<{ ts: number | string | null }>>(
      this.options.db('user_events').max({ ts: 'ts' }),
    );
    const bound =
      newest?.ts === null || newest?.ts === undefined
        ? cutoff
        : Math.min(cutoff, Number(newest.ts) + 1);
    let deliveries = 0;
    while (!this.stopped) {
      // A deadlock with a projector batch costs this batch a retry, not the whole pass.
      const deleted = await withRetry(() => this.deleteDeliveries(bound), {
        maxAttempts: 4,
        shouldContinue: () => !this.stopped,
        onRetry: (err, attempt, delay) =>
          this.log.warn({ err, attempt, delay }, 'cleaner batch failed; retrying'),
      });
      deliveries += deleted;
      if (deleted < this.options.batchSize) break;
    }
    let events = 0;
    while (!this.stopped) {
      const deleted = await this.deleteEvents(cutoff);
      events += deleted;
      if (deleted < this.options.batchSize) break;
    }
    const results = await this.options
      .db('command_results')
      .where('created_at', '<', this.now() - RESULT_RETENTION_MS)
      .delete();
    // Conflicts are told for as long as the events they are about are kept.
    const conflicts = await this.options
      .db('publish_conflicts')
      .where('created_at', '<', cutoff)
      .delete();
    const totals = { deliveries, events, results, conflicts };
    if (deliveries + events > 0) this.log.info(totals, 'expired events deleted');
    this.options.onPass?.(totals);
    return totals;
  }

  private async deleteDeliveries(cutoff: number): Promise<number> {
    const { db, batchSize } = this.options;
    const mysql = dialectOf(db) === 'mysql';
    return db.transaction(async (trx) => {
      const oldest = trx('user_events')
        .select('uid', 'seq')
        .where('ts', '<', cutoff)
        .orderBy([{ column: 'ts' }, { column: 'uid' }, { column: 'seq' }])
        .limit(batchSize);
      // Locked as read, so the delete below takes exactly these rows. The scan runs along the
      // (ts, uid, seq) index: new deliveries are written at its far end, never into the range.
      if (mysql) void oldest.forUpdate();
      const rows = await typed<Array<{ uid: number; seq: number }>>(oldest);
      if (rows.length === 0) return 0;
      // The same rows in one statement: one per row made the cleaner slower than ingest.
      await trx.raw('DELETE FROM user_events WHERE ts < ? ORDER BY ts, uid, seq LIMIT ?', [
        cutoff,
        rows.length,
      ]);
      const floors = new Map<number, number>();
      for (const row of rows) floors.set(row.uid, Math.max(floors.get(row.uid) ?? 0, row.seq + 1));
      // One statement for every floor; its primary-key IN list locks rows in ascending uid
      // order, the order the projector locks user_states rows in, so the two cannot deadlock.
      const sorted = [...floors].sort(([a], [b]) => a - b);
      const cases = sorted.map(() => 'WHEN ? THEN ?').join(' ');
      await trx('user_states')
        .whereIn(
          'uid',
          sorted.map(([uid]) => uid),
        )
        .update({
          floor_seq: trx.raw(
            `${mysql ? 'GREATEST' : 'MAX'}(floor_seq, CASE uid ${cases} END)`,
            sorted.flat(),
          ),
        });
      return rows.length;
    });
  }

  /**
   * Event rows older than the cutoff that no delivery refers to any more. The age alone is not
   * enough: a projector may deliver an old event (a lagging partition, a rebuild) between this
   * pass's delivery and event deletions, and the delivery would lose its body.
   */
  private async deleteEvents(cutoff: number): Promise<number> {
    const { db, batchSize } = this.options;
    const unreferenced = (k: Knex, query: Knex.QueryBuilder) =>
      query.whereNotExists(
        k('user_events').select(k.raw('1')).whereRaw('user_events.event_id = events.event_id'),
      );
    const copies = await typed<Array<{ log_partition: number; event_id: string }>>(
      unreferenced(
        db,
        db('events').select('log_partition', 'event_id').where('ts', '<', cutoff),
      ).limit(batchSize),
    );
    if (copies.length === 0) return 0;
    // By primary key, one partition per statement (a bare id list let MariaDB scan the ts index
    // instead), and checked again while deleting: the delete locks each row, then sees committed
    // deliveries.
    const byPartition = new Map<number, string[]>();
    for (const { log_partition: partition, event_id: id } of copies) {
      const ids = byPartition.get(partition);
      if (ids) ids.push(id);
      else byPartition.set(partition, [id]);
    }
    let deleted = 0;
    for (const [partition, ids] of [...byPartition].sort(([a], [b]) => a - b)) {
      deleted += await unreferenced(
        db,
        db('events')
          .where('log_partition', partition)
          .whereIn('event_id', ids)
          .where('ts', '<', cutoff),
      ).delete();
    }
    return deleted;
  }
}
