import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommitGroup } from '../../src/store/commit-group.js';
import { migrateLatest, typed, type Database } from '../../src/store/database.js';
import { openTestStore } from '../helpers/services.js';

/** Counts the BEGINs the store sees, to tell one shared transaction from several. */
function countBegins(db: Database): () => number {
  let begins = 0;
  db.on('query', (query: { sql: string }) => {
    if (/^(BEGIN|START TRANSACTION)/i.test(query.sql.trim())) begins++;
  });
  return () => begins;
}

async function storedUids(db: Database): Promise<number[]> {
  const rows = await typed<Array<{ uid: number }>>(db('user_states').select('uid').orderBy('uid'));
  return rows.map((row) => row.uid);
}

function insertUser(uid: number) {
  return { uid, log_partition: 0, head_seq: 1, floor_seq: 1, last_ts: 0, read_version: 0 };
}

describe('a commit group on SQLite', () => {
  let db: Database;
  let cleanup: () => Promise<void>;
  let begins: () => number;

  beforeAll(async () => {
    ({ db, cleanup } = await openTestStore('sqlite'));
    await migrateLatest(db);
    begins = countBegins(db);
  });

  afterAll(async () => {
    await db?.destroy();
    await cleanup?.();
  });

  it('commits the transactions asked for together in one, each answered with its own result', async () => {
    await db('user_states').delete();
    const group = new CommitGroup(db);
    const before = begins();
    const results = await Promise.all(
      [1, 2, 3, 4].map((uid) =>
        group.transaction(async (trx) => {
          await trx('user_states').insert(insertUser(uid));
          return uid * 10;
        }),
      ),
    );
    expect(results).toEqual([10, 20, 30, 40]);
    expect(begins() - before).toBe(1);
    expect(await storedUids(db)).toEqual([1, 2, 3, 4]);
  });

  it('rolls back only the member that failed; the others commit', async () => {
    await db('user_states').delete();
    await db('user_states').insert(insertUser(7));
    const group = new CommitGroup(db);
    const outcomes = await Promise.allSettled([
      group.transaction((trx) => trx('user_states').insert(insertUser(5))),
      group.transaction(async (trx) => {
        await trx('user_states').insert(insertUser(6));
        // The primary key refuses it: this member's row 6 must go with it.
        await trx('user_states').insert(insertUser(7));
      }),
      group.transaction((trx) => trx('user_states').insert(insertUser(8))),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(await storedUids(db)).toEqual([5, 7, 8]);
  });

  it('fails every member when the shared commit fails, and keeps none of their writes', async () => {
    await db('user_states').delete();
    // A deferred foreign key is checked at COMMIT: one member's orphan row fails the commit.
    await db.raw('CREATE TABLE IF NOT EXISTS xp_parents (id INTEGER PRIMARY KEY)');
    await db.raw(
      'CREATE TABLE IF NOT EXISTS xp_children (parent INTEGER REFERENCES xp_parents (id) DEFERRABLE INITIALLY DEFERRED)',
    );
    const group = new CommitGroup(db);
    const settled = await Promise.allSettled([
      group.transaction((trx) => trx('user_states').insert(insertUser(9))),
      group.transaction((trx) => trx('xp_children').insert({ parent: 404 })),
    ]);
    expect(settled.map((o) => o.status)).toEqual(['rejected', 'rejected']);
    expect(String((settled[0] as PromiseRejectedResult).reason)).toMatch(/FOREIGN KEY/);
    expect(await storedUids(db)).toEqual([]);
    expect(await db('xp_children').count({ n: '*' })).toEqual([{ n: 0 }]);
    // The group goes on serving after a failed commit.
    await group.transaction((trx) => trx('user_states').insert(insertUser(11)));
    expect(await storedUids(db)).toEqual([11]);
  });

  it('runs the transactions asked for while one commits in the next group', async () => {
    await db('user_states').delete();
    const group = new CommitGroup(db);
    const before = begins();
    const asked: Promise<unknown>[] = [];
    await group.transaction(async (trx) => {
      // Asked for from inside the running group: it must wait for the next one, not join it.
      asked.push(group.transaction((next) => next('user_states').insert(insertUser(13))));
      await trx('user_states').insert(insertUser(12));
    });
    await Promise.all(asked);
    expect(begins() - before).toBe(2);
    expect(await storedUids(db)).toEqual([12, 13]);
  });
});

describe('a commit group on MariaDB', () => {
  let db: Database;
  let cleanup: () => Promise<void>;
  let begins: () => number;

  beforeAll(async () => {
    ({ db, cleanup } = await openTestStore('mariadb'));
    await migrateLatest(db);
    begins = countBegins(db);
  });

  afterAll(async () => {
    await db?.destroy();
    await cleanup?.();
  });

  it('runs each transaction on its own, so they stay parallel on the pool', async () => {
    const group = new CommitGroup(db);
    const before = begins();
    const outcomes = await Promise.allSettled([
      group.transaction((trx) => trx('user_states').insert(insertUser(1))),
      group.transaction(async (trx) => {
        await trx('user_states').insert(insertUser(2));
        throw new Error('this one gives up');
      }),
      group.transaction((trx) => trx('user_states').insert(insertUser(3))),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(begins() - before).toBe(3);
    expect(await storedUids(db)).toEqual([1, 3]);
  });
});
