import type { Knex } from 'knex';
import type { Logger } from '../logger.js';
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
      const deleted = await this.deleteDeliveries(cutoff);
      deliveries += deleted;
      if (deleted < this.options.batchSize) break;
    }
    let events = 0;
    while (!this.stopped) {
      const deleted = await this.deleteLimited('events', 'event_id', cutoff, 'ts');
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
      // Deleting by primary key keeps the lock footprint to exactly these rows.
      for (let i = 0; i < rows.length; i += 200) {
        const part = rows.slice(i, i + 200);
        await trx('user_events')
          .whereIn(
            ['uid', 'seq'],
            part.map((r) => [r.uid, r.seq]),
          )
          .delete();
      }
      const mysql = dialectOf(db) === 'mysql';
      for (const [uid, floor] of floors) {
        await trx('user_states')
          .where({ uid })
          .update({
            floor_seq: trx.raw(mysql ? 'GREATEST(floor_seq, ?)' : 'MAX(floor_seq, ?)', [floor]),
          });
      }
      return rows.length;
    });
  }

  private async deleteLimited(
    table: string,
    key: string,
    cutoff: number,
    column: string,
  ): Promise<number> {
    const { db, batchSize } = this.options;
    const ids = await typed<Array<Record<string, string>>>(
      db(table).select(key).where(column, '<', cutoff).limit(batchSize),
    );
    if (ids.length === 0) return 0;
    return db(table)
      .whereIn(
        key,
        ids.map((row) => row[key]!),
      )
      .where(column, '<', cutoff)
      .delete();
  }
}
