import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateDown, migrateLatest, type Database } from '../../src/store/database.js';
import { migrationSource } from '../../migrations/index.js';
import { partitionOfUid } from '../../src/domain/partitioner.js';
import { openTestStore } from '../helpers/services.js';
import { typed } from '../../src/store/database.js';

const TABLES = [
  'command_results',
  'events',
  'minipush_meta',
  'projector_forwards',
  'projector_offsets',
  'publish_conflicts',
  'user_events',
  'user_states',
];
const MIGRATIONS = [
  '20261125-001-initial',
  '20261202-002-events-per-partition',
  '20261203-003-read-model-epoch',
  '20261204-004-seen-archived',
];

async function tableNames(db: Database): Promise<string[]> {
  if ((db.client as { config: { client: unknown } }).config.client === 'mysql2') {
    const [rows] = await typed<[Array<Record<string, string>>]>(db.raw('SHOW TABLES'));
    return rows
      .map((row) => Object.values(row)[0]!)
      .filter((t) => !t.startsWith('knex_'))
      .sort();
  }
  const rows = await typed<
    Array<{
      name: string;
    }>
  >(db.raw("SELECT name FROM sqlite_master WHERE type = 'table'"));
  return rows
    .map((r) => r.name)
    .filter((t) => !t.startsWith('knex_') && !t.startsWith('sqlite_'))
    .sort();
}

describe.each(['mariadb', 'sqlite'] as const)('migrations on %s', (kind) => {
  let db: Database;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ({ db, cleanup } = await openTestStore(kind));
  });

  afterAll(async () => {
    await db.destroy();
    await cleanup();
  });

  it('should create every table on the way up and drop them on the way down', async () => {
    expect(await migrateLatest(db)).toEqual(MIGRATIONS);
    expect(await tableNames(db)).toEqual(TABLES);
    expect(await migrateLatest(db)).toEqual([]);
    expect(await migrateDown(db)).toEqual([...MIGRATIONS].reverse());
    expect(await tableNames(db)).toEqual([]);
    expect(await migrateLatest(db)).toEqual(MIGRATIONS);
  });

  it('should treat event ids as case-sensitive', async () => {
    await db('events').insert([
      { event_id: 'Order-1', log_partition: 0, body: '{}', create_time: 1, ts: 1 },
      { event_id: 'order-1', log_partition: 0, body: '{}', create_time: 1, ts: 1 },
    ]);
    const rows = await typed<Array<{ event_id: string }>>(db('events').select('event_id'));
    expect(rows.map((r) => r.event_id).sort()).toEqual(['Order-1', 'order-1']);
  });

  it('should give every partition holding deliveries of an event its own copy, and take them back', async () => {
    await migrateDown(db);
    // A read model of the first layout: one row per event id, users on several partitions.
    await db.migrate.up({ migrationSource });
    const partitions = 4;
    const uids = [11, 12, 13, 14, 15, 16];
    const owner = (uid: number) => partitionOfUid(uid, partitions);
    await db('minipush_meta').insert({ name: 'partitions:mp.commands', value: String(partitions) });
    await db('events').insert([
      { event_id: 'shared', body: '{"n":1}', create_time: 5, sender: null, ts: 10 },
      { event_id: 'alone', body: '{"n":2}', create_time: 6, sender: 7, ts: 11 },
      { event_id: 'orphan', body: '{"n":3}', create_time: 7, sender: null, ts: 12 },
    ]);
    await db('user_states').insert(uids.map((uid) => ({ uid, head_seq: uid === 11 ? 2 : 1 })));
    await db('user_events').insert([
      ...uids.map((uid) => ({ uid, seq: 1, event_id: 'shared', ts: 10 })),
      { uid: 11, seq: 2, event_id: 'alone', ts: 11 },
    ]);

    expect(await migrateLatest(db)).toEqual(MIGRATIONS.slice(1));
    const states = await typed<Array<{ uid: number; log_partition: number }>>(
      db('user_states').orderBy('uid').select('uid', 'log_partition'),
    );
    expect(states).toEqual(uids.map((uid) => ({ uid, log_partition: owner(uid) })));
    const copies = await typed<Array<{ event_id: string; log_partition: number; body: string }>>(
      db('events')
        .orderBy(['event_id', 'log_partition'])
        .select('event_id', 'log_partition', 'body'),
    );
    const sharedOn = [...new Set(uids.map(owner))].sort();
    expect(sharedOn.length).toBeGreaterThan(1);
    expect(copies).toEqual([
      { event_id: 'alone', log_partition: owner(11), body: '{"n":2}' },
      ...sharedOn.map((p) => ({ event_id: 'shared', log_partition: p, body: '{"n":1}' })),
    ]);

    // Back past the seen and archived states and the epoch, then past the copies.
    expect(await db.migrate.down({ migrationSource })).toBeDefined();
    expect(await db.migrate.down({ migrationSource })).toBeDefined();
    expect(await db.migrate.down({ migrationSource })).toBeDefined();
    const back = await typed<Array<{ event_id: string; body: string; sender: number | null }>>(
      db('events').orderBy('event_id').select('event_id', 'body', 'sender'),
    );
    expect(back).toEqual([
      { event_id: 'alone', body: '{"n":2}', sender: 7 },
      { event_id: 'shared', body: '{"n":1}', sender: null },
    ]);
    await migrateLatest(db);
  });

  it('should start every user as having seen what it read, and nothing more', async () => {
    await migrateDown(db);
    for (let i = 0; i < 3; i++) await db.migrate.up({ migrationSource });
    const read = Buffer.from([1, 2, 3]);
    await db('user_states').insert([
      { uid: 1, head_seq: 3, read_bitmap: read },
      { uid: 2, head_seq: 1, read_bitmap: null },
    ]);
    expect(await migrateLatest(db)).toEqual(['20261204-004-seen-archived']);
    const rows = await typed<
      Array<{ uid: number; seen_bitmap: Buffer | null; archived_bitmap: Buffer | null }>
    >(db('user_states').orderBy('uid').select('uid', 'seen_bitmap', 'archived_bitmap'));
    // Seen is stored as "seen, not read": nothing beyond the read seqs yet, which stay.
    expect(rows.map((r) => [r.uid, r.seen_bitmap, r.archived_bitmap])).toEqual([
      [1, null, null],
      [2, null, null],
    ]);
    const kept = await typed<Array<{ read_bitmap: Buffer }>>(
      db('user_states').where({ uid: 1 }).select('read_bitmap'),
    );
    expect(Buffer.from(kept[0]!.read_bitmap)).toEqual(read);
  });
});
