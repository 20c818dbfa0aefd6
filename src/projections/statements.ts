import type { Knex } from 'knex';
import { CommitGroup } from '../store/commit-group.js';
import { dialectOf } from '../store/database.js';
import { FencedError } from './checkpoints.js';

/** The compare-and-set that fences a slice: it must change exactly one row. */
export interface Fence {
  readonly statement: Knex.QueryBuilder;
  /**
   * On MySQL, the statement right after {@link statement}: it fails the round trip when the
   * compare-and-set changed no row, so nothing after it runs.
   */
  readonly unlessChanged: Knex.Raw;
  /**
   * True when the partition no longer stands where the fence expects it, as committed: read
   * outside the slice's transaction, which may hold its own uncommitted move.
   */
  moved(): Promise<boolean>;
  readonly message: string;
}

/**
 * A statement as SQL text with `?` placeholders and its values, made without a query builder:
 * the projector's multi-row inserts, where building them with knex cost more than the rest of
 * a delivery's CPU in the projector's statement text. Identifiers are quoted with backticks,
 * which MySQL and SQLite both read.
 */
export interface PlainStatement {
  readonly sql: string;
  readonly bindings: readonly Knex.Value[];
}

export type SliceStatement = Knex.QueryBuilder | PlainStatement;

/** Knex's builders and raws (a raw has `sql` too) are compiled; a plain statement is as is. */
function isPlain(statement: SliceStatement | Knex.Raw): statement is PlainStatement {
  return !('toSQL' in statement);
}

/**
 * `insert into` `table` (columns) values (…), … for `rows` rows whose values are `bindings`,
 * row after row; `suffix` (an upsert's or insert-ignore's clause) follows.
 */
export function insertStatement(
  table: string,
  columns: readonly string[],
  bindings: readonly Knex.Value[],
  options: { readonly verb?: string; readonly suffix?: string } = {},
): PlainStatement {
  const rows = bindings.length / columns.length;
  const row = `(${columns.map(() => '?').join(', ')})`;
  const values = new Array<string>(rows).fill(row).join(', ');
  const names = columns.map((column) => `\`${column}\``).join(', ');
  return {
    sql: `${options.verb ?? 'insert'} into \`${table}\` (${names}) values ${values}${options.suffix ?? ''}`,
    bindings,
  };
}

/** A slice's writes: the fence, then the statements, built on the given query builder. */
export type SliceWrites = (q: Knex) => {
  readonly fence: Fence;
  readonly statements: readonly SliceStatement[];
};

/**
 * Bytes of SQL and values one round trip carries at most: well under MySQL's default
 * `max_allowed_packet` (16 MiB on MariaDB, 64 MiB on MySQL 8), and a large batch still costs a
 * few round trips, not one per statement.
 */
const MAX_ROUND_TRIP_BYTES = 4 << 20;

interface Native extends PlainStatement {
  readonly bytes: number;
}

function native(statement: SliceStatement | Knex.Raw): Native {
  const { sql, bindings } = isPlain(statement) ? statement : statement.toSQL().toNative();
  let bytes = sql.length;
  for (const value of bindings) {
    bytes += Buffer.isBuffer(value)
      ? value.length * 2
      : typeof value === 'string'
        ? value.length
        : 8;
  }
  return { sql, bindings, bytes };
}

/** The part of a pooled mysql2 connection used here (its callback API). */
interface MysqlConnection {
  query(sql: string, values: unknown[], done: (err: Error | null) => void): void;
  destroy(): void;
}

interface PoolClient {
  acquireConnection(): Promise<MysqlConnection>;
  releaseConnection(connection: MysqlConnection): Promise<unknown>;
}

function query(connection: MysqlConnection, sql: string, values: unknown[]): Promise<void> {
  return new Promise((resolve, reject) =>
    connection.query(sql, values, (err) => (err ? reject(err) : resolve())),
  );
}

/** A slice's SQL, built once, and its fence. */
interface BuiltSlice {
  readonly fence: Fence;
  readonly parts: readonly Native[];
  readonly bytes: number;
}

interface PendingSlice {
  readonly slice: BuiltSlice;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/**
 * Group commits on MySQL in flight at once: one forming while another runs, and MariaDB's
 * second core busy, without a transaction per partition each waking the server on its own.
 */
const MYSQL_GROUPS_IN_FLIGHT = 2;

/**
 * Commits slices' writes, the fence first, each slice in a transaction with its offset; a stale
 * projector (the fence changed no row, or a later statement failed on rows the new owner wrote)
 * gets {@link FencedError} and nothing of its slice stays.
 *
 * On MySQL a transaction is one multi-statement query: `START TRANSACTION`, the fence, its
 * guard, the statements, `COMMIT` — one round trip where a knex transaction takes three (BEGIN,
 * the statements, COMMIT), and no knex transaction object to build. MySQL runs the statements
 * of a multi-statement query in order and stops at the first error, so a failed fence (its
 * guard fails) or a failed statement never reaches the COMMIT; the transaction is then rolled
 * back on the same connection before the pool has it again. The slices of several partitions
 * that are ready together (asked for in the same turn, or while {@link MYSQL_GROUPS_IN_FLIGHT}
 * groups run) share that transaction, each with its own fence: one round trip and one commit
 * for all, which at a few records a batch is what the server's CPU goes on. If a group fails,
 * each of its slices is committed again alone, so one slice's failure (a fence, a duplicate key)
 * is its own. On SQLite (in-process, no round trips) the slices of all partitions share a
 * commit ({@link CommitGroup}) the same way, each in a savepoint.
 */
export class FencedCommits {
  private readonly sqlite: CommitGroup | null;
  private queue: PendingSlice[] = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(private readonly db: Knex) {
    this.sqlite = dialectOf(db) === 'mysql' ? null : new CommitGroup(db);
  }

  commit(writes: SliceWrites): Promise<void> {
    if (this.sqlite) {
      return this.sqlite.transaction(async (trx) => {
        const { fence, statements } = writes(trx);
        const updated = (await fence.statement) as unknown as number;
        if (updated !== 1) throw new FencedError(fence.message);
        for (const statement of statements)
          await (isPlain(statement) ? trx.raw(statement.sql, statement.bindings) : statement);
      });
    }
    const { fence, statements } = writes(this.db);
    const parts = [fence.statement, fence.unlessChanged, ...statements].map(native);
    const slice = { fence, parts, bytes: parts.reduce((sum, part) => sum + part.bytes, 0) };
    return new Promise((resolve, reject) => {
      this.queue.push({ slice, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= MYSQL_GROUPS_IN_FLIGHT || this.queue.length === 0)
      return;
    this.scheduled = true;
    // One turn lets the slices of the partitions fetched together join.
    setImmediate(() => {
      this.scheduled = false;
      this.startGroup();
    });
  }

  private startGroup(): void {
    if (this.inFlight >= MYSQL_GROUPS_IN_FLIGHT || this.queue.length === 0) return;
    // As many slices as one round trip carries; a larger slice goes alone, in several.
    let take = 0;
    let bytes = 0;
    while (
      take < this.queue.length &&
      (take === 0 || bytes + this.queue[take]!.slice.bytes <= MAX_ROUND_TRIP_BYTES)
    ) {
      bytes += this.queue[take]!.slice.bytes;
      take++;
    }
    const members = this.queue.splice(0, take);
    this.inFlight++;
    void this.commitGroup(members).finally(() => {
      this.inFlight--;
      this.schedule();
    });
    this.schedule();
  }

  private async commitGroup(members: readonly PendingSlice[]): Promise<void> {
    const failure = await this.run(members.map((member) => member.slice));
    if (failure === null) {
      for (const member of members) member.resolve();
      return;
    }
    if (members.length === 1) {
      const [only] = members;
      only!.reject(await this.explain(only!.slice, failure.err));
      return;
    }
    // Which slice failed the group is not told: each goes again alone.
    await Promise.all(
      members.map(async (member) => {
        const alone = await this.run([member.slice]);
        if (alone === null) member.resolve();
        else member.reject(await this.explain(member.slice, alone.err));
      }),
    );
  }

  /** A failed slice's error: fenced if the partition moved on, else the store's own. */
  private async explain(slice: BuiltSlice, err: unknown): Promise<unknown> {
    // Read on another pooled connection (or the slice's, now released).
    if (await slice.fence.moved().catch(() => false)) return new FencedError(slice.fence.message);
    return err;
  }

  /** Runs slices as one transaction; the failure, if any, after rolling back. */
  private async run(slices: readonly BuiltSlice[]): Promise<{ readonly err: unknown } | null> {
    const trips: Native[][] = [[]];
    let bytes = 0;
    for (const part of slices.flatMap((slice) => slice.parts)) {
      if (bytes + part.bytes > MAX_ROUND_TRIP_BYTES && trips[trips.length - 1]!.length > 0) {
        trips.push([]);
        bytes = 0;
      }
      trips[trips.length - 1]!.push(part);
      bytes += part.bytes;
    }
    const pool = this.db.client as PoolClient;
    let connection: MysqlConnection;
    try {
      connection = await pool.acquireConnection();
    } catch (err) {
      return { err };
    }
    let failure: { readonly err: unknown } | null = null;
    try {
      for (const [index, trip] of trips.entries()) {
        const sql = trip.map((part) => part.sql);
        if (index === 0) sql.unshift('START TRANSACTION');
        if (index === trips.length - 1) sql.push('COMMIT');
        const values: unknown[] = [];
        for (const part of trip) for (const value of part.bindings) values.push(value);
        await query(connection, sql.join(';\n'), values);
      }
    } catch (err) {
      failure = { err };
      // Whatever ran of the transaction is undone before the connection serves anyone else;
      // one that cannot even roll back is closed, which the pool's check drops.
      await query(connection, 'ROLLBACK', []).catch(() => connection.destroy());
    } finally {
      await pool.releaseConnection(connection);
    }
    return failure;
  }
}
