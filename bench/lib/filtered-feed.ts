import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import { BitmapClass, encodeBitmap } from '../../src/domain/read-bitmap.js';
import { diff } from '../../src/queries/diff.js';
import { StoreUserViews } from '../../src/queries/user-view.js';
import { migrateLatest, openDatabase } from '../../src/store/database.js';

/** A store holding one user's feed, made for timing queries on it. */
export interface FeedStore {
  readonly label: string;
  readonly db: Knex;
  close(): Promise<void>;
}

export function sqliteStore(): FeedStore {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'minipush-bench-feed-'));
  const db = openDatabase({ mysqlUrl: '', dataDir });
  return {
    label: 'SQLite (embedded)',
    db,
    close: async () => {
      await db.destroy();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A database of its own on the MariaDB at `mysqlUrl`, dropped on close. */
export async function mariadbStore(mysqlUrl: string): Promise<FeedStore> {
  const url = new URL(mysqlUrl);
  const name = `minipush_bench_feed_${process.pid}_${Date.now() % 100_000}`;
  const server = new URL(url);
  server.pathname = '/';
  const admin = openDatabase({ mysqlUrl: server.toString(), dataDir: '', poolSize: 1 });
  await admin.raw(`CREATE DATABASE \`${name}\``);
  url.pathname = `/${name}`;
  const db = openDatabase({ mysqlUrl: url.toString(), dataDir: '' });
  return {
    label: 'MariaDB',
    db,
    close: async () => {
      await db.destroy();
      await admin.raw(`DROP DATABASE \`${name}\``);
      await admin.destroy();
    },
  };
}

/**
 * Writes one user's feed of `events` events straight into the projected tables, all read but
 * `unread` seqs spread evenly (the bench times queries, not the projector).
 */
export async function writeFeed(
  db: Knex,
  uid: number,
  events: number,
  unread: number,
): Promise<number[]> {
  await migrateLatest(db);
  const rows = Array.from({ length: events }, (_, i) => i + 1);
  for (let i = 0; i < rows.length; i += 500) {
    const part = rows.slice(i, i + 500);
    await db('events').insert(
      part.map((seq) => ({
        event_id: `e-${seq}`,
        log_partition: 0,
        body: JSON.stringify({ title: `event ${seq}`, n: seq }),
        create_time: 1_764_064_800_000 + seq,
        sender: null,
        ts: 1_764_064_800_000 + seq,
      })),
    );
    await db('user_events').insert(
      part.map((seq) => ({ uid, seq, event_id: `e-${seq}`, ts: 1_764_064_800_000 + seq })),
    );
  }
  const unreadSeqs = Array.from({ length: unread }, (_, i) =>
    Math.floor(((i + 0.5) * events) / unread),
  );
  const read = BitmapClass.fromRange(1, events + 1);
  for (const seq of unreadSeqs) read.delete(seq);
  await db('user_states').insert({
    uid,
    log_partition: 0,
    head_seq: events,
    floor_seq: 1,
    last_ts: 1_764_064_800_000 + events,
    read_bitmap: encodeBitmap(read),
    seen_bitmap: null,
    archived_bitmap: null,
    read_version: 1,
  });
  return unreadSeqs;
}

/**
 * Mean µs per diff of the unread events (status=unread) and of an unfiltered page of the same
 * size, taken call by call in alternation so drift on a busy box hits both alike. Both read the store
 * (no cache): the state row, then the page's rows.
 */
export async function timeFilteredDiff(
  db: Knex,
  uid: number,
  pageSize: number,
  rounds: number,
): Promise<{ filteredUs: number; unfilteredUs: number; filteredSeqs: number[] }> {
  const views = new StoreUserViews(db);
  const filtered = () => diff(views, { uid, after: 0, limit: pageSize, status: 'unread' });
  const unfiltered = () => diff(views, { uid, after: 0, limit: pageSize, status: 'all' });
  const first = await filtered();
  // Warm both paths up (JIT, statement caches) before any is timed.
  for (let i = 0; i < 500; i++) {
    await filtered();
    await unfiltered();
  }
  let filteredNs = 0n;
  let unfilteredNs = 0n;
  const perRound = 20;
  const calls = rounds * perRound;
  for (let i = 0; i < calls; i++) {
    // Which goes first alternates too, so neither always follows the other's cache state.
    const pair = i % 2 === 0 ? [filtered, unfiltered] : [unfiltered, filtered];
    for (const query of pair) {
      const started = process.hrtime.bigint();
      await query();
      const took = process.hrtime.bigint() - started;
      if (query === filtered) filteredNs += took;
      else unfilteredNs += took;
    }
  }
  return {
    filteredUs: Number(filteredNs) / calls / 1000,
    unfilteredUs: Number(unfilteredNs) / calls / 1000,
    filteredSeqs: first.events.map((e) => e.seq),
  };
}
