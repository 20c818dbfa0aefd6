import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  migrateDown,
  migrateLatest,
  openDatabase,
  type Database,
} from '../../src/store/database.js';
import { createTestDatabase, tempDir } from '../helpers/services.js';
import { typed } from '../../src/store/database.js';

const TABLES = [
  'command_results',
  'events',
  'minipush_meta',
  'projector_forwards',
  'projector_offsets',
  'user_events',
  'user_states',
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
    if (kind === 'mariadb') {
      const created = await createTestDatabase();
      db = openDatabase({ mysqlUrl: created.url, dataDir: '' });
      cleanup = created.drop;
    } else {
      const dir = tempDir();
      db = openDatabase({ mysqlUrl: '', dataDir: dir });
      cleanup = () => Promise.resolve(fs.rmSync(dir, { recursive: true, force: true }));
    }
  });

  afterAll(async () => {
    await db.destroy();
    await cleanup();
  });

  it('should create every table on the way up and drop them on the way down', async () => {
    expect(await migrateLatest(db)).toEqual(['20261125-001-initial']);
    expect(await tableNames(db)).toEqual(TABLES);
    expect(await migrateLatest(db)).toEqual([]);
    expect(await migrateDown(db)).toEqual(['20261125-001-initial']);
    expect(await tableNames(db)).toEqual([]);
    expect(await migrateLatest(db)).toEqual(['20261125-001-initial']);
  });

  it('should treat event ids as case-sensitive', async () => {
    await db('events').insert([
      { event_id: 'Order-1', body: '{}', create_time: 1, ts: 1 },
      { event_id: 'order-1', body: '{}', create_time: 1, ts: 1 },
    ]);
    const rows = await typed<Array<{ event_id: string }>>(db('events').select('event_id'));
    expect(rows.map((r) => r.event_id).sort()).toEqual(['Order-1', 'order-1']);
  });
});
