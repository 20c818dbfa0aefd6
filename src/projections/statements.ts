import type { Knex } from 'knex';
import type { CommitGroup } from '../store/commit-group.js';
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

/** A slice's writes: the fence, then the statements, built on the given query builder. */
export type SliceWrites = (q: Knex) => {
  readonly fence: Fence;
  readonly statements: readonly Knex.QueryBuilder[];
};

/**
 * Bytes of SQL and values one round trip carries at most: well under MySQL's default
 * `max_allowed_packet` (16 MiB on MariaDB, 64 MiB on MySQL 8), and a large batch still costs a
 * few round trips, not one per statement.
 */
const MAX_ROUND_TRIP_BYTES = 4 << 20;

interface Native {
  readonly sql: string;
  readonly bindings: readonly unknown[];
  readonly bytes: number;
}

function native(statement: Knex.QueryBuilder | Knex.Raw): Native {
  const { sql, bindings } = statement.toSQL().toNative();
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

/**
 * Commits a slice's writes, the fence first, in one transaction; a stale projector (the fence
 * changed no row, or a later statement failed on rows the new owner wrote) gets
 * {@link FencedError} and nothing of the slice stays.
 *
 * On MySQL the whole transaction is one multi-statement query: `START TRANSACTION`, the fence,
 * its guard, the statements, `COMMIT` — one round trip for a usual slice where a knex
 * transaction takes three (BEGIN, the statements, COMMIT), and no knex transaction object to
 * build. MySQL runs the statements of a multi-statement query in order and stops at the first
 * error, so a failed fence (its guard fails) or a failed statement never reaches the COMMIT; the
 * transaction is then rolled back on the same connection before the pool has it again. On
 * SQLite (in-process, no round trips) the slices of all partitions share a commit
 * ({@link CommitGroup}), the fence first in each.
 */
export async function commitFenced(
  db: Knex,
  commits: CommitGroup,
  writes: SliceWrites,
): Promise<void> {
  if (dialectOf(db) !== 'mysql') {
    await commits.transaction(async (trx) => {
      const { fence, statements } = writes(trx);
      const updated = (await fence.statement) as unknown as number;
      if (updated !== 1) throw new FencedError(fence.message);
      for (const statement of statements) await statement;
    });
    return;
  }
  const { fence, statements } = writes(db);
  const parts = [fence.statement, fence.unlessChanged, ...statements].map(native);
  const trips: Native[][] = [[]];
  let bytes = 0;
  for (const part of parts) {
    if (bytes + part.bytes > MAX_ROUND_TRIP_BYTES && trips[trips.length - 1]!.length > 0) {
      trips.push([]);
      bytes = 0;
    }
    trips[trips.length - 1]!.push(part);
    bytes += part.bytes;
  }
  const pool = db.client as PoolClient;
  const connection = await pool.acquireConnection();
  let failure: { readonly err: unknown } | null = null;
  try {
    for (const [index, trip] of trips.entries()) {
      const sql = trip.map((part) => part.sql);
      if (index === 0) sql.unshift('START TRANSACTION');
      if (index === trips.length - 1) sql.push('COMMIT');
      await query(
        connection,
        sql.join(';\n'),
        trip.flatMap((part) => part.bindings),
      );
    }
  } catch (err) {
    failure = { err };
    // Whatever ran of the transaction is undone before the connection serves anyone else; one
    // that cannot even roll back is closed, which the pool's check drops.
    await query(connection, 'ROLLBACK', []).catch(() => connection.destroy());
  } finally {
    await pool.releaseConnection(connection);
  }
  if (failure === null) return;
  // Read on another pooled connection (or this one, now released).
  if (await fence.moved().catch(() => false)) throw new FencedError(fence.message);
  throw failure.err;
}
