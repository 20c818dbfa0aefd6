import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointStatements, FencedError } from '../../src/projections/checkpoints.js';
import { FencedCommits, type SliceWrites } from '../../src/projections/statements.js';
import { migrateLatest, typed, type Database } from '../../src/store/database.js';
import { openTestStore } from '../helpers/services.js';

const TOPIC = 'statements.commands';

describe.each(['mariadb', 'sqlite'] as const)('a fenced slice on %s', (kind) => {
  let db: Database;
  let commits: FencedCommits;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    // One connection: every slice and every check below share it, as they would a busy pool's.
    ({ db, cleanup } = await openTestStore(kind, { poolSize: 1 }));
    commits = new FencedCommits(db);
    await migrateLatest(db);
    await db('projector_offsets').insert(
      [0, 1, 2].map((p) => ({
        topic: TOPIC,
        log_partition: p,
        next_offset: 10,
        notified_offset: 10,
        updated_at: 0,
      })),
    );
  });

  afterAll(async () => {
    await db?.destroy();
    await cleanup?.();
  });

  /** One slice of `partition` that believes the partition stands at `expectedNext`. */
  function slice(partition: number, expectedNext: number, uid: number, seq: number) {
    return commits.commit((q) => {
      const { fence, statements } = checkpointStatements(db, q, {
        topic: TOPIC,
        partition,
        expectedNext,
        nextOffset: expectedNext + 1,
        notifiedOffset: expectedNext,
        forwardMarks: new Map([[2, 7]]),
        now: 1,
      });
      return {
        fence,
        statements: [
          ...statements,
          q('user_events').insert({ uid, seq, event_id: `e-${uid}-${seq}`, ts: 1 }),
          q('user_states')
            .insert({ uid, log_partition: partition, head_seq: seq, floor_seq: 1, last_ts: 1 })
            .onConflict('uid')
            .merge(['head_seq']),
        ],
      };
    });
  }

  const offset = async (partition: number) =>
    Number(
      (
        await typed<{ next_offset: number | string }>(
          db('projector_offsets')
            .where({ topic: TOPIC, log_partition: partition })
            .first('next_offset'),
        )
      ).next_offset,
    );
  const feed = async (uid: number) =>
    (
      await typed<Array<{ seq: number }>>(
        db('user_events').where({ uid }).orderBy('seq').select('seq'),
      )
    ).map((row) => row.seq);

  it('should commit every statement when the fence holds', async () => {
    await slice(0, 10, 100, 1);
    expect(await offset(0)).toBe(11);
    expect(await feed(100)).toEqual([1]);
    const forwards = await typed<Array<{ source_offset: number | string }>>(
      db('projector_forwards').where({ topic: TOPIC, log_partition: 0 }).select('source_offset'),
    );
    expect(forwards.map((row) => Number(row.source_offset))).toEqual([7]);
  });

  it('should write nothing and say fenced when the partition moved on', async () => {
    // Given a projector that still thinks partition 0 stands at 10 (it moved to 11)
    await expect(slice(0, 10, 101, 1)).rejects.toBeInstanceOf(FencedError);
    // Then none of its statements stayed
    expect(await offset(0)).toBe(11);
    expect(await feed(101)).toEqual([]);
  });

  it('should say fenced, not the duplicate, when a stale slice runs into the new owner’s rows', async () => {
    // Given the new owner of partition 1 wrote seq 1 of uid 102 and moved the offset
    await slice(1, 10, 102, 1);
    // When a stale projector of partition 1 writes the same seq (it would collide)
    const stale = slice(1, 10, 102, 1);
    // Then it is fenced, and what the owner wrote stands
    await expect(stale).rejects.toBeInstanceOf(FencedError);
    expect(await offset(1)).toBe(11);
    expect(await feed(102)).toEqual([1]);
  });

  it('should still report a failure that is not a fence as it is', async () => {
    // Given the fence holds (partition 2 stands at 10) but a statement breaks a key
    await slice(1, 11, 103, 1);
    const failing = commits.commit((q) => ({
      fence: checkpointStatements(db, q, {
        topic: TOPIC,
        partition: 2,
        expectedNext: 10,
        nextOffset: 11,
        notifiedOffset: 10,
        forwardMarks: new Map(),
        now: 1,
      }).fence,
      statements: [q('user_events').insert({ uid: 103, seq: 1, event_id: 'other', ts: 1 })],
    }));
    // Then the error is the store's, and the rollback kept the offset
    await expect(failing).rejects.not.toBeInstanceOf(FencedError);
    expect(await offset(2)).toBe(10);
  });

  it('should leave no transaction open on the connection after a failed slice', async () => {
    // Given a slice that fails (partition 3 has no row: the fence changes nothing)
    await expect(slice(3, 10, 104, 1)).rejects.toBeInstanceOf(FencedError);
    expect(await offset(3).catch(() => null)).toBeNull();
    // When the pool's one connection then writes outside any slice, and a ROLLBACK follows
    await db('user_events').insert({ uid: 105, seq: 1, event_id: 'plain', ts: 1 });
    await db.raw('ROLLBACK').catch(() => undefined);
    // Then the write stands: it ran in no transaction left over from the slice
    expect(await feed(105)).toEqual([1]);
    expect(await feed(104)).toEqual([]);
  });

  it('should commit a slice too large for one round trip whole, or nothing of it', async () => {
    // Given partition 4 at offset 10, and a slice of about 6 MiB: more than one round trip carries
    await db('projector_offsets').insert({
      topic: TOPIC,
      log_partition: 4,
      next_offset: 10,
      notified_offset: 10,
      updated_at: 0,
    });
    const big = (expectedNext: number, tag: string, failAtEnd: boolean) =>
      commits.commit((q) => ({
        fence: checkpointStatements(db, q, {
          topic: TOPIC,
          partition: 4,
          expectedNext,
          nextOffset: expectedNext + 1,
          notifiedOffset: expectedNext,
          forwardMarks: new Map(),
          now: 1,
        }).fence,
        statements: [
          ...Array.from({ length: 6 }, (_, i) =>
            q('events').insert({
              event_id: `${tag}-${i}`,
              log_partition: 4,
              body: 'x'.repeat(1 << 20),
              create_time: 1,
              ts: 1,
            }),
          ),
          // Breaks the (uid, seq) key of the first test's row when asked to.
          q('user_events').insert(
            failAtEnd
              ? { uid: 100, seq: 1, event_id: 'again', ts: 1 }
              : { uid: 106, seq: 1, event_id: `${tag}-0`, ts: 1 },
          ),
        ],
      }));
    const copies = async (tag: string) =>
      (
        await typed<Array<{ n: number | string }>>(
          db('events').where('event_id', 'like', `${tag}-%`).count({ n: '*' }),
        )
      )[0]!.n;
    // When its last statement fails, in the last round trip
    await expect(big(10, 'failed', true)).rejects.not.toBeInstanceOf(FencedError);
    // Then nothing of it stayed, the offset included
    expect(Number(await copies('failed'))).toBe(0);
    expect(await offset(4)).toBe(10);
    // And the same slice without the failure commits whole
    await big(10, 'whole', false);
    expect(Number(await copies('whole'))).toBe(6);
    expect(await feed(106)).toEqual([1]);
    expect(await offset(4)).toBe(11);
  });

  it('should commit the slices of a group alone when one of them is stale, and fence only that one', async () => {
    // Given partitions 5 and 6 at offset 10, and a slice of each asked for in the same turn,
    // the one of partition 6 from a projector that thinks it stands at 9
    await db('projector_offsets').insert(
      [5, 6].map((p) => ({
        topic: TOPIC,
        log_partition: p,
        next_offset: 10,
        notified_offset: 10,
        updated_at: 0,
      })),
    );
    const writes =
      (partition: number, expectedNext: number, uid: number): SliceWrites =>
      (q) => ({
        fence: checkpointStatements(db, q, {
          topic: TOPIC,
          partition,
          expectedNext,
          nextOffset: 11,
          notifiedOffset: expectedNext,
          forwardMarks: new Map(),
          now: 1,
        }).fence,
        statements: [q('user_events').insert({ uid, seq: 1, event_id: `g-${uid}`, ts: 1 })],
      });
    const [fresh, stale] = await Promise.allSettled([
      commits.commit(writes(5, 10, 107)),
      commits.commit(writes(6, 9, 108)),
    ]);
    // Then the fresh slice stands whole, the stale one is fenced and left nothing
    expect(fresh.status).toBe('fulfilled');
    expect(stale.status === 'rejected' && stale.reason).toBeInstanceOf(FencedError);
    expect(await offset(5)).toBe(11);
    expect(await feed(107)).toEqual([1]);
    expect(await offset(6)).toBe(10);
    expect(await feed(108)).toEqual([]);
  });
});
