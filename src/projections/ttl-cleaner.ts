import type { Knex } from 'knex';
import type { Logger } from '../logger.js';
import { withRetry } from '../retry.js';
import { dialectOf } from '../store/database.js';
import { typed } from '../store/database.js';

export interface TtlCleanerOptions {
  readonly db: Knex;
  readonly ttlMs: number;
  readonly batchSize: number;
  readonly intervalMs: number;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Seen after each pass: rows deleted per table. */
  readonly onPass?: (deleted: { deliveries: number; events: number; results: number }) => void;
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
  async runOnce(): Promise<{ deliveries: number; events: number; results: number }> {
    const cutoff = this.now() - this.options.ttlMs;
    let deliveries = 0;
    while (!this.stopped) {
      // A deadlock with a projector batch costs this batch a retry, not the whole pass.
      const deleted = await withRetry(() => this.deleteDeliveries(cutoff), {
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
    const totals = { deliveries, events, results };
    if (deliveries + events > 0) this.log.info(totals, 'expired events deleted');
    this.options.onPass?.(totals);
    return totals;
  }

  private async deleteDeliveries(cutoff: number): Promise<number> {
    const { db, batchSize } = this.options;
    return db.transaction(async (trx) => {
      const rows = await typed<Array<{ uid: number; seq: number }>>(
        trx('user_events')
          .select('uid', 'seq')
          .where('ts', '<', cutoff)
          .orderBy([{ column: 'ts' }, { column: 'uid' }, { column: 'seq' }])
          .limit(batchSize),
      );
      if (rows.length === 0) return 0;
      const floors = new Map<number, number>();
      for (const row of rows) floors.set(row.uid, Math.max(floors.get(row.uid) ?? 0, row.seq + 1));
      // One full-key equality per row: InnoDB then locks exactly these rows. A `(uid, seq) IN`
      // list was scanned per uid with next-key locks, over rows deleted but not yet purged and
      // into the gap after each feed's last row, where the projector inserts new deliveries.
      for (const row of rows) {
        await trx('user_events').where({ uid: row.uid, seq: row.seq }).delete();
      }
      const mysql = dialectOf(db) === 'mysql';
      // Ascending uids, the order the projector locks user_states rows in: any other order
      // deadlocks with a projector batch touching two of these users.
      for (const [uid, floor] of [...floors].sort(([a], [b]) => a - b)) {
        await trx('user_states')
          .where({ uid })
          .update({
            floor_seq: trx.raw(mysql ? 'GREATEST(floor_seq, ?)' : 'MAX(floor_seq, ?)', [floor]),
          });
      }
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
    const unreferenced = (query: Knex.QueryBuilder) =>
      query.whereNotExists(
        db('user_events').select(db.raw('1')).whereRaw('user_events.event_id = events.event_id'),
      );
    const ids = await typed<Array<{ event_id: string }>>(
      unreferenced(db('events').select('event_id').where('ts', '<', cutoff)).limit(batchSize),
    );
    if (ids.length === 0) return 0;
    // Checked again while deleting: the delete locks each row, then sees committed deliveries.
    return unreferenced(
      db('events')
        .whereIn(
          'event_id',
          ids.map((row) => row.event_id),
        )
        .where('ts', '<', cutoff),
    ).delete();
  }
}
