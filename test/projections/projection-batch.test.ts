import knex from 'knex';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeBitmap } from '../../src/domain/read-bitmap.js';
import { ProjectionBatch } from '../../src/projections/projection-batch.js';
import { ProjectedUsers } from '../../src/projections/projected-users.js';
import roaring from 'roaring';

const { RoaringBitmap32 } = roaring;
const bitmap = (...seqs: number[]) => encodeBitmap(new RoaringBitmap32(seqs));

describe('a projection batch announcing counts', () => {
  // Every user below is known to the batch: it reads nothing from this store.
  const db = knex({
    client: 'better-sqlite3',
    connection: { filename: ':memory:' },
    useNullAsDefault: true,
  });
  afterAll(() => db.destroy());

  async function batchWith(
    rows: Record<number, { headSeq: number; read?: Buffer; seen?: Buffer; archived?: Buffer }>,
  ): Promise<ProjectionBatch> {
    const known = new ProjectedUsers(1 << 20);
    for (const [uid, row] of Object.entries(rows)) {
      known.put(Number(uid), 0, {
        headSeq: row.headSeq,
        floorSeq: 1,
        lastTs: 0,
        readVersion: 1,
        stored: { read: row.read ?? null, seen: row.seen ?? null, archived: row.archived ?? null },
      });
    }
    const batch = new ProjectionBatch(db, 0);
    await batch.loadOptimistic(new Set(Object.keys(rows).map(Number)), known);
    return batch;
  }

  /** What a publish does to the user's row: one more seq. */
  function deliver(batch: ProjectionBatch, uid: number): void {
    const state = batch.user(uid);
    state.headSeq += 1;
    state.headChanged = true;
  }

  const countsOf = (batch: ProjectionBatch, uid: number) => {
    const change = batch.changes().find((c) => c.uid === uid)!;
    return [change.unreadCount, change.unseenCount, change.archivedCount];
  };

  it('should count every seq unread and unseen for a user who never marked any', async () => {
    const batch = await batchWith({ 1: { headSeq: 4 } });
    deliver(batch, 1);
    deliver(batch, 2); // first delivery to a user with no row
    expect(countsOf(batch, 1)).toEqual([5, 5, 0]);
    expect(countsOf(batch, 2)).toEqual([1, 1, 0]);
  });

  it('should count the stored marks of a user the batch did not decode', async () => {
    const batch = await batchWith({
      1: { headSeq: 3, read: bitmap(1, 2) },
      2: { headSeq: 3, seen: bitmap(3) },
      3: { headSeq: 3, archived: bitmap(2) },
    });
    for (const uid of [1, 2, 3]) deliver(batch, uid);
    expect(countsOf(batch, 1)).toEqual([2, 2, 0]);
    expect(countsOf(batch, 2)).toEqual([4, 3, 0]);
    expect(countsOf(batch, 3)).toEqual([3, 3, 1]);
  });
});
