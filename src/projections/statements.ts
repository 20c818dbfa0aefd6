import type { Knex } from 'knex';
import { dialectOf } from '../store/database.js';
import { FencedError } from './checkpoints.js';

/** The compare-and-set that fences a slice: it must change exactly one row. */
export interface Fence {
  readonly statement: Knex.QueryBuilder;
  /**
   * True when the partition no longer stands where the fence expects it, as committed: read
   * outside the slice's transaction, which may hold its own uncommitted move.
   */
  moved(): Promise<boolean>;
  readonly message: string;
}

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

function native(statement: Knex.QueryBuilder): Native {
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

/** Affected rows of the first result of a multi-statement answer (or of a single one). */
function firstAffected(result: unknown): number {
  const first = (Array.isArray(result) ? result[0] : result) as { affectedRows?: number };
  return first?.affectedRows ?? -1;
}

/**
 * Runs a slice's statements in its transaction, the fence first. On MySQL they go as
 * multi-statement queries, one round trip for a usual slice instead of one per statement: the
 * fence's result is looked at before the commit, and a stale projector whose later statements
 * fail on rows the new owner wrote is told it was fenced, as it would have been had it stopped at
 * the fence. On SQLite (in-process, no round trips) they run one by one, the fence first.
 */
export async function runFenced(
  trx: Knex.Transaction,
  fence: Fence,
  statements: readonly Knex.QueryBuilder[],
): Promise<void> {
  if (dialectOf(trx) !== 'mysql') {
    const updated = (await fence.statement) as unknown as number;
    if (updated !== 1) throw new FencedError(fence.message);
    for (const statement of statements) await statement;
    return;
  }
  const groups: Native[][] = [[]];
  let bytes = 0;
  for (const part of [fence.statement, ...statements].map(native)) {
    if (bytes + part.bytes > MAX_ROUND_TRIP_BYTES && groups[groups.length - 1]!.length > 0) {
      groups.push([]);
      bytes = 0;
    }
    groups[groups.length - 1]!.push(part);
    bytes += part.bytes;
  }
  let fenceAffected = -1;
  try {
    for (const [index, group] of groups.entries()) {
      const [result] = (await trx.raw(
        group.map((part) => part.sql).join(';\n'),
        group.flatMap((part) => part.bindings) as Knex.ValueDict[],
      )) as unknown as [unknown];
      if (index === 0) fenceAffected = firstAffected(result);
      // A moved partition's later statements are wasted work: stop at the first round trip.
      if (fenceAffected !== 1) break;
    }
  } catch (err) {
    if (await fence.moved().catch(() => false)) throw new FencedError(fence.message);
    throw err;
  }
  if (fenceAffected !== 1) throw new FencedError(fence.message);
}
