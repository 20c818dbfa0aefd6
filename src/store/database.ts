import fs from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { migrationSource } from '../../migrations/index.js';

export type Database = Knex;

export type Dialect = 'mysql' | 'sqlite';

export interface DatabaseOptions {
  /** `mysql://…` URL, or empty for SQLite. */
  readonly mysqlUrl: string;
  /** Folder of the SQLite file when `mysqlUrl` is empty. */
  readonly dataDir: string;
  readonly poolSize?: number;
}

export function dialectOf(db: Knex): Dialect {
  const client = (db.client as { config: { client: unknown } }).config.client;
  return client === 'mysql2' || client === 'mysql' ? 'mysql' : 'sqlite';
}

/** Opens the store: MySQL/MariaDB through mysql2, or SQLite (better-sqlite3) in `dataDir`. */
export function openDatabase(options: DatabaseOptions): Knex {
  if (options.mysqlUrl !== '') {
    return knexFactory({
      client: 'mysql2',
      connection: {
        uri: options.mysqlUrl,
        // Seqs and offsets fit in 2^53; numbers keep the code free of string juggling.
        supportBigNumbers: true,
        bigNumberStrings: false,
        dateStrings: true,
        charset: 'utf8mb4',
        // A projector slice's statements go in one round trip (projections/statements.ts).
        // Every statement is built with bound values, never by pasting input into SQL, which
        // is what would make stacked statements a risk.
        multipleStatements: true,
      } as Knex.MySql2ConnectionConfig,
      pool: {
        min: 0,
        max: options.poolSize ?? 10,
        afterCreate(
          conn: { query(sql: string, done: (err: Error | null) => void): void },
          done: (err: Error | null, conn: unknown) => void,
        ) {
          // Estimate IN lists by index dives however long they are. From 200 values MariaDB
          // estimates from index statistics instead, which events with many recipients skew:
          // it scanned the whole (event_id, uid) index for every projector batch.
          conn.query('SET SESSION eq_range_index_dive_limit = 0', (err) => done(err, conn));
        },
      },
      acquireConnectionTimeout: 30_000,
    });
  }
  fs.mkdirSync(options.dataDir, { recursive: true });
  return knexFactory({
    client: 'better-sqlite3',
    connection: { filename: path.join(options.dataDir, 'minipush.db') },
    useNullAsDefault: true,
    pool: {
      min: 1,
      max: 1,
      afterCreate(conn: SqliteConnection, done: (err: Error | null) => void) {
        // WAL survives a killed process; NORMAL sync is durable against process crashes.
        conn.pragma('journal_mode = WAL');
        conn.pragma('synchronous = NORMAL');
        conn.pragma('busy_timeout = 5000');
        conn.pragma('foreign_keys = ON');
        cachePreparedStatements(conn);
        done(null);
      },
      // knex leaves a transaction whose COMMIT failed open (it sends no ROLLBACK after a failed
      // COMMIT); a connection taken from the pool is idle, so an open transaction there is that
      // leftover, and the next query must not run inside it.
      validate(conn: SqliteConnection) {
        if (conn.inTransaction) conn.exec('ROLLBACK');
        return true;
      },
    },
  });
}

interface SqliteConnection {
  readonly inTransaction: boolean;
  pragma(sql: string): unknown;
  prepare(sql: string): unknown;
  exec(sql: string): unknown;
}

/** Statements kept prepared per SQLite connection, least recently used dropped first. */
const PREPARED_STATEMENTS = 512;

/**
 * knex prepares every query it runs on better-sqlite3 again (12 % of the embedded default's CPU
 * under publish load): keep the prepared statements by SQL text instead. A statement is
 * re-prepared by SQLite itself when the schema changes, and knex runs each to completion before
 * the next, so one statement serves every query of its text.
 */
function cachePreparedStatements(conn: SqliteConnection): void {
  const prepare = conn.prepare.bind(conn);
  const prepared = new Map<string, unknown>();
  conn.prepare = (sql: string) => {
    let statement = prepared.get(sql);
    if (statement === undefined) {
      statement = prepare(sql);
      if (prepared.size >= PREPARED_STATEMENTS) {
        prepared.delete(prepared.keys().next().value!);
      }
    } else {
      prepared.delete(sql);
    }
    prepared.set(sql, statement);
    return statement;
  };
}

/** Applies every pending migration; returns the names applied. */
export async function migrateLatest(db: Knex): Promise<string[]> {
  const [, applied] = await typed<[number, string[]]>(db.migrate.latest({ migrationSource }));
  return applied;
}

/** Rolls every migration back (drops all MiniPush tables). */
export async function migrateDown(db: Knex): Promise<string[]> {
  const [, reverted] = await typed<[number, string[]]>(
    db.migrate.rollback({ migrationSource }, true),
  );
  return reverted;
}

/**
 * Types a query's result. Row shapes follow the schema in migrations/; knex cannot infer them
 * from column lists, so each query states what it selects.
 */
export async function typed<T>(query: PromiseLike<unknown>): Promise<T> {
  const result: unknown = await query;
  return result as T;
}

/** The statement broke a primary key or unique index (MySQL/MariaDB or SQLite). */
export function isDuplicateKey(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return (
    code === 'ER_DUP_ENTRY' ||
    code === 'SQLITE_CONSTRAINT_PRIMARYKEY' ||
    code === 'SQLITE_CONSTRAINT_UNIQUE'
  );
}
