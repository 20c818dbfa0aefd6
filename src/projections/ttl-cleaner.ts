import type { Knex } from 'knex';
import type { ExpireCommand } from '../commands/command-record.js';
import { toAppendRecords } from '../commands/command-writer.js';
import type { CommandLog, LogPosition } from '../log/log.js';
import type { Logger } from '../logger.js';
import { typed } from '../store/database.js';
import type { ProjectionProgress } from './projection-progress.js';

/** Rows one pass deleted, by what they were. */
export interface CleanerPass {
  /** Expired deliveries, removed by the projector from the pass's expire commands. */
  readonly deliveries: number;
  readonly events: number;
  readonly results: number;
  readonly conflicts: number;
}

export interface TtlCleanerOptions {
  readonly db: Knex;
  /** Where the expire commands go. */
  readonly log: CommandLog;
  /** Tells when the projectors have applied them. */
  readonly progress: ProjectionProgress;
  /** How long a pass waits for its expire commands to be projected before it gives up. */
  readonly waitTimeoutMs: number;
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
 * Expires events in batches. Expiry follows each delivery's log time, which never decreases
 * within a user's feed, so what expired is a prefix of each feed. The cleaner does not delete
 * deliveries itself: it writes one `expire` command per user with the new floor to the commands
 * log, and the projector owning the user applies it like any command, in log order, and
 * announces the new floor on the heads stream (read caches and hubs learn it like any change).
 * It then deletes what nothing refers to any more: event contents, read-mark results, conflicts.
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
    const deliveries = await this.expireDeliveries(bound);
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

  /**
   * Walks the expired deliveries along the (ts, uid, seq) index, batch after batch, writing one
   * expire command per user up to its newest expired seq; then waits until the projectors have
   * applied them all, so the event contents they leave unreferenced can go next.
   */
  private async expireDeliveries(bound: number): Promise<number> {
    const { db, log, progress, batchSize } = this.options;
    const partitions = await log.partitionCount();
    const written: LogPosition[] = [];
    let after: { ts: number; uid: number; seq: number } | null = null;
    let deliveries = 0;
    while (!this.stopped) {
      const from = after;
      let query = db('user_events')
        .select('uid', 'seq', 'ts')
        .where('ts', '<', bound)
        .orderBy([{ column: 'ts' }, { column: 'uid' }, { column: 'seq' }])
        .limit(batchSize);
      if (from) {
        // Past the previous batch: its commands may not be applied yet.
        query = query.andWhere((past) => {
          void past.where('ts', '>', from.ts).orWhere((sameTs) => {
            void sameTs.where('ts', from.ts).andWhere((next) => {
              void next.where('uid', '>', from.uid).orWhere((sameUid) => {
                void sameUid.where('uid', from.uid).andWhere('seq', '>', from.seq);
              });
            });
          });
        });
      }
      const rows = await typed<Array<{ uid: number; seq: number; ts: number | string }>>(query);
      if (rows.length === 0) break;
      const floors = new Map<number, number>();
      for (const row of rows) floors.set(row.uid, Math.max(floors.get(row.uid) ?? 0, row.seq + 1));
      const records = [...floors].flatMap(([uid, floor]) => {
        const command: ExpireCommand = { v: 1, type: 'expire', uid, floor };
        return toAppendRecords(command, partitions);
      });
      written.push(...(await log.append(records)));
      deliveries += rows.length;
      const last = rows[rows.length - 1]!;
      after = { ts: Number(last.ts), uid: last.uid, seq: last.seq };
      if (rows.length < batchSize) break;
    }
    if (written.length > 0 && !(await progress.waitFor(written, this.options.waitTimeoutMs))) {
      this.log.warn(
        { commands: written.length, waitedMs: this.options.waitTimeoutMs },
        'expire commands not projected in time (projectors down or behind?); the next pass goes on',
      );
    }
    return deliveries;
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
