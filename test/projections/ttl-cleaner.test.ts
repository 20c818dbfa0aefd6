import { randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Knex } from 'knex';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandRecord } from '../../src/commands/command-record.js';
import { partitionOfUid } from '../../src/domain/partitioner.js';
import { decodeBitmap } from '../../src/domain/read-bitmap.js';
import { createLogger } from '../../src/logger.js';
import { TtlCleaner } from '../../src/projections/ttl-cleaner.js';
import { getCommandResult } from '../../src/queries/get-publish-result.js';
import { getStats } from '../../src/queries/get-stats.js';
import { StoreUserViews } from '../../src/queries/user-view.js';
import type { Runtime } from '../../src/runtime.js';
import { typed } from '../../src/store/database.js';
import { send, startPipeline, waitSettled } from '../helpers/pipeline.js';
import { readWholeLog, replayLog } from '../helpers/projection-model.js';
import { backendConfig, type Backend, type TestBackend } from '../helpers/services.js';
import { Workload } from '../helpers/workload.js';
import { commandLimits } from '../../src/config.js';

const PARTITIONS = 4;

interface DeliveryRow {
  uid: number;
  seq: number;
  event_id: string;
  ts: number;
}

async function deliveries(db: Knex, uids?: readonly number[]): Promise<DeliveryRow[]> {
  const query = db('user_events').select('uid', 'seq', 'event_id', 'ts').orderBy(['uid', 'seq']);
  if (uids) void query.whereIn('uid', uids);
  const rows = await typed<Array<DeliveryRow & { ts: number | string }>>(query);
  return rows.map((row) => ({ ...row, ts: Number(row.ts) }));
}

async function eventIds(db: Knex): Promise<Set<string>> {
  const rows = await typed<Array<{ event_id: string }>>(db('events').select('event_id'));
  return new Set(rows.map((row) => row.event_id));
}

/** Event rows: one copy per partition that holds the id. */
async function eventCopies(db: Knex): Promise<number> {
  const [row] = await typed<Array<{ n: number | string }>>(db('events').count({ n: '*' }));
  return Number(row?.n ?? 0);
}

async function states(db: Knex, uids: readonly number[]) {
  const rows = await typed<Array<{ uid: number; head_seq: number; floor_seq: number }>>(
    db('user_states').whereIn('uid', uids).select('uid', 'head_seq', 'floor_seq'),
  );
  return new Map(rows.map((row) => [row.uid, { head: row.head_seq, floor: row.floor_seq }]));
}

/**
 * One consistent look at every feed (a single statement): uids whose stored seqs are not exactly
 * [floor, head], and deliveries whose event row is gone.
 */
async function brokenFeeds(db: Knex): Promise<string[]> {
  const rows = await typed<
    Array<{
      uid: number;
      head_seq: number;
      floor_seq: number;
      low: number | null;
      high: number | null;
      count: number | string;
      orphans: number | string;
    }>
  >(
    db('user_states as s')
      .leftJoin('user_events as ue', 'ue.uid', 's.uid')
      .leftJoin('events as e', (on) =>
        on.on('e.event_id', 'ue.event_id').andOn('e.log_partition', 's.log_partition'),
      )
      .groupBy('s.uid', 's.head_seq', 's.floor_seq')
      .select(
        's.uid',
        's.head_seq',
        's.floor_seq',
        db.raw('MIN(ue.seq) AS low'),
        db.raw('MAX(ue.seq) AS high'),
        db.raw('COUNT(ue.seq) AS count'),
        db.raw(
          'SUM(CASE WHEN ue.seq IS NOT NULL AND e.event_id IS NULL THEN 1 ELSE 0 END) AS orphans',
        ),
      ),
  );
  const out: string[] = [];
  for (const row of rows) {
    const count = Number(row.count);
    const gapFree =
      count === 0
        ? row.floor_seq === row.head_seq + 1 || (row.head_seq === 0 && row.floor_seq === 1)
        : row.low === row.floor_seq &&
          row.high === row.head_seq &&
          count === row.high - row.low + 1;
    if (!gapFree) {
      out.push(
        `uid ${row.uid}: floor ${row.floor_seq} head ${row.head_seq} stored ${row.low}..${row.high} (${count})`,
      );
    }
    if (Number(row.orphans) > 0)
      out.push(`uid ${row.uid}: ${row.orphans} deliveries without event row`);
  }
  return out;
}

describe.each<Backend>(['kafka+mysql', 'embedded'])('TtlCleaner on %s', (kind) => {
  let made: TestBackend;
  let runtime: Runtime;
  let db: Knex;
  const logger = createLogger('warn');
  const cleaner = (now: () => number, ttlMs: number, batchSize = 3, intervalMs = 3_600_000) =>
    new TtlCleaner({ ...pipes(), ttlMs, batchSize, intervalMs, logger, now });
  /** What a cleaner works through: the store, and the log its expire commands go to. */
  const pipes = () => ({
    db,
    log: runtime.backend.log,
    progress: runtime.progress,
    waitTimeoutMs: 60_000,
  });

  beforeAll(async () => {
    made = await backendConfig(kind, { roles: ['projector'], partitions: PARTITIONS });
    runtime = await startPipeline(made.config);
    db = runtime.backend.db;
  });

  afterAll(async () => {
    await runtime?.close();
    await made?.cleanup();
  });

  const uid = () => randomInt(1, 2 ** 32 - 1);
  const publish = (id: string, to: number[]) =>
    send(runtime, { v: 1, type: 'publish', id, to, body: { id } });
  /** Later appends get a later log time. */
  const tick = () => sleep(15);

  it('should delete exactly the expired prefix of each feed, keep an event while a delivery of it remains, and advance floors', async () => {
    const [a, b, c] = [uid(), uid(), uid()];
    const tag = `p-${a}`;
    for (let i = 1; i <= 4; i++) await publish(`${tag}-old-${i}`, [a, b]);
    await publish(`${tag}-old-c`, [c]);
    await tick();
    await publish(`${tag}-mid-a`, [a]);
    // Re-sent to a (already holds it) and c (new): c's delivery is recent, so the event stays.
    await publish(`${tag}-old-1`, [a, c]);
    await publish(`${tag}-mid-b`, [b]);
    await tick();
    await publish(`${tag}-new`, [a, b, c]);

    const before = await deliveries(db);
    const mine = before.filter((d) => [a, b, c].includes(d.uid));
    // Everything before the second round of publishes expires.
    const cutoff = mine.find((d) => d.event_id === `${tag}-mid-a`)!.ts;
    expect(mine.filter((d) => d.ts < cutoff)).toHaveLength(9);
    const ttlMs = 30 * 86_400_000;
    const eventsBefore = await eventIds(db);
    const copiesBefore = await eventCopies(db);

    const deleted = await cleaner(() => cutoff + ttlMs, ttlMs, 2).runOnce();

    // Exactly the rows older than the cutoff went, all tables over.
    const after = await deliveries(db);
    expect(after).toEqual(before.filter((d) => d.ts >= cutoff));
    expect(deleted.deliveries).toBe(before.length - after.length);
    const feeds = (u: number) => after.filter((d) => d.uid === u).map((d) => [d.seq, d.event_id]);
    expect(feeds(a)).toEqual([
      [5, `${tag}-mid-a`],
      [6, `${tag}-new`],
    ]);
    expect(feeds(b)).toEqual([
      [5, `${tag}-mid-b`],
      [6, `${tag}-new`],
    ]);
    expect(feeds(c)).toEqual([
      [2, `${tag}-old-1`],
      [3, `${tag}-new`],
    ]);
    const s = await states(db, [a, b, c]);
    expect([s.get(a), s.get(b), s.get(c)]).toEqual([
      { head: 6, floor: 5 },
      { head: 6, floor: 5 },
      { head: 3, floor: 2 },
    ]);
    // An event row goes only with its last delivery.
    const events = await eventIds(db);
    const referenced = new Set(after.map((d) => d.event_id));
    expect([...events].filter((id) => !referenced.has(id))).toEqual([]);
    expect([...eventsBefore].filter((id) => referenced.has(id) && !events.has(id))).toEqual([]);
    expect(events.has(`${tag}-old-1`)).toBe(true);
    expect(events.has(`${tag}-old-2`)).toBe(false);
    expect(deleted.events).toBe(copiesBefore - (await eventCopies(db)));

    // Diff-style reads from the client's last seq: from the floor, bodies and all.
    const diff = await typed<Array<{ seq: number; body: string }>>(
      db('user_events as ue')
        .join('user_states as s', 's.uid', 'ue.uid')
        .join('events as e', (on) =>
          on.on('e.event_id', 'ue.event_id').andOn('e.log_partition', 's.log_partition'),
        )
        .where('ue.uid', c)
        .andWhere('ue.seq', '>', 0)
        .orderBy('ue.seq')
        .select('ue.seq', 'e.body'),
    );
    expect(diff.map((r) => [r.seq, JSON.parse(r.body) as unknown])).toEqual([
      [2, { id: `${tag}-old-1` }],
      [3, { id: `${tag}-new` }],
    ]);
    expect(await getStats(new StoreUserViews(db), c)).toMatchObject({
      headSeq: 3,
      floorSeq: 2,
      unreadCount: 2,
    });

    // A later pass with the clock past everything empties the feeds; floors go past the heads.
    const last = Math.max(...after.map((d) => d.ts));
    await cleaner(() => last + 1 + ttlMs, ttlMs, 2).runOnce();
    expect(await deliveries(db)).toEqual([]);
    expect(await eventIds(db)).toEqual(new Set());
    const emptied = await states(db, [a, b, c]);
    expect([emptied.get(a), emptied.get(b), emptied.get(c)]).toEqual([
      { head: 6, floor: 7 },
      { head: 6, floor: 7 },
      { head: 3, floor: 4 },
    ]);
    expect(await getStats(new StoreUserViews(db), a)).toMatchObject({
      headSeq: 6,
      floorSeq: 7,
      unreadCount: 0,
    });
    // New events continue the seqs above the floor.
    await publish(`${tag}-after`, [a]);
    expect(await deliveries(db, [a])).toMatchObject([{ uid: a, seq: 7, event_id: `${tag}-after` }]);
  });

  it('should trim every state bitmap to the floor as expiry raises it', async () => {
    const u = uid();
    for (let i = 1; i <= 3; i++) await publish(`b-${u}-${i}`, [u]);
    await tick();
    for (let i = 4; i <= 6; i++) await publish(`b-${u}-${i}`, [u]);
    await send(runtime, { v: 1, type: 'markReadUpTo', uid: u, upTo: 6 });
    await send(runtime, { v: 1, type: 'archive', uid: u, seqs: [2, 5] });
    await send(runtime, { v: 1, type: 'markUnread', uid: u, seqs: [1, 6] });
    const rows = await deliveries(db, [u]);
    const cutoff = rows[2]!.ts + 1;
    expect(rows[3]!.ts).toBeGreaterThanOrEqual(cutoff);
    await cleaner(() => cutoff + 1000, 1000).runOnce();

    // The stored columns: seen holds the seqs seen and not read.
    const bits = async (state: 'read' | 'seen' | 'archived') => {
      const column = `${state}_bitmap`;
      const row = await typed<Record<string, Buffer | null>>(
        db('user_states').where({ uid: u }).first(column),
      );
      return decodeBitmap(row[column]).toArray();
    };
    // Expiry moves the floor and trims the read, seen and archived bitmaps with it, so a
    // stored bitmap never holds an expired seq (and a rebuild writes the same bytes).
    expect(await bits('read')).toEqual([4, 5]);
    expect(await bits('seen')).toEqual([6]);
    expect(await bits('archived')).toEqual([5]);
    expect(await getStats(new StoreUserViews(db), u)).toMatchObject({
      headSeq: 6,
      floorSeq: 4,
      unreadCount: 1,
      unseenCount: 0,
      archivedCount: 1,
    });

    const topic = runtime.backend.log.topic;
    const changed = async (command: CommandRecord) => {
      const [p] = await send(runtime, command);
      return getCommandResult(db, topic, p!.partition, p!.offset);
    };
    // Marks of expired seqs change nothing; the stored ones still flip.
    expect(await changed({ v: 1, type: 'markUnread', uid: u, seqs: [2, 3] })).toBe(0);
    expect(await changed({ v: 1, type: 'unarchive', uid: u, seqs: [2] })).toBe(0);
    expect(await bits('read')).toEqual([4, 5]);
    expect(await changed({ v: 1, type: 'markUnread', uid: u, seqs: [2, 4] })).toBe(1);
    expect(await bits('read')).toEqual([5]);
    expect(await bits('seen')).toEqual([4, 6]);
    expect(await getStats(new StoreUserViews(db), u)).toMatchObject({
      floorSeq: 4,
      unreadCount: 2,
      unseenCount: 0,
      archivedCount: 1,
    });
  });

  if (kind === 'kafka+mysql') {
    it('should not expire a later seq before an earlier one when log times go backwards', async () => {
      const u = uid();
      const now = Date.now();
      const producer = runtime.backend.kafka!.producer();
      await producer.connect();
      const partition = partitionOfUid(u, PARTITIONS);
      // Producers stamp records (CreateTime): a second producer with a slow clock.
      const stamped = (id: string, timestamp: number) => ({
        partition,
        key: String(u),
        timestamp: String(timestamp),
        value: JSON.stringify({ v: 1, type: 'publish', id, to: [u], body: 1 }),
      });
      await producer.send({
        topic: runtime.backend.topics.commands,
        messages: [stamped(`t-${u}-1`, now), stamped(`t-${u}-2`, now - 60_000)],
      });
      await producer.disconnect();
      await waitSettled(runtime);
      expect((await deliveries(db, [u])).map((d) => [d.seq, d.ts])).toEqual([
        [1, now],
        [2, now],
      ]);
      await cleaner(() => now - 30_000 + 1000, 1000).runOnce();
      expect((await deliveries(db, [u])).map((d) => d.seq)).toEqual([1, 2]);
      await cleaner(() => now + 1 + 1000, 1000).runOnce();
      expect(await deliveries(db, [u])).toEqual([]);
      expect((await states(db, [u])).get(u)).toEqual({ head: 2, floor: 3 });
    });
  }

  it('should keep every feed gap-free from floor to head while the projector projects concurrently', async () => {
    const workload = new Workload(PARTITIONS, 40, false);
    let producing = true;
    let bursts = 0;
    const producer = (async () => {
      while (producing) {
        const burst = workload.burst(15);
        await runtime.backend.log.append(burst.records);
        burst.accept();
        bursts++;
        await sleep(randomInt(5, 25));
      }
    })();
    const problems: string[] = [];
    let passes = 0;
    let stoppedAt = 0;
    /**
     * Checks the feeds while a cleaner runs, for at least `ms` and until it completed `more`
     * passes: a busy box makes passes slower, not fewer.
     */
    const watch = async (ms: number, more: number) => {
      const until = Date.now() + ms;
      const enough = passes + more;
      const deadline = Date.now() + 60_000;
      while ((Date.now() < until || passes < enough) && Date.now() < deadline) {
        problems.push(...(await brokenFeeds(db)));
        await sleep(50);
      }
    };
    // What the cleaners report: failed passes and retried batches.
    const complaints: string[] = [];
    const cleanerLog = pino(
      { level: 'warn' },
      {
        write: (line: string) => {
          complaints.push(line);
        },
      },
    );
    const concurrent = (ttlMs: number, now?: () => number) =>
      new TtlCleaner({
        ...pipes(),
        ttlMs,
        batchSize: 20,
        intervalMs: 10,
        logger: cleanerLog,
        onPass: () => passes++,
        ...(now ? { now } : {}),
      });
    try {
      // Everything already projected is expired: the cleaner races every batch the projector
      // writes, which holds events it is about to expire again.
      const eager = concurrent(1000, () => Date.now() + 3_600_000);
      eager.start();
      await watch(3000, 2);
      await eager.stop();
      // A moving cutoff: feeds expire in prefixes while they grow.
      const moving = concurrent(300);
      moving.start();
      await watch(3000, 3);
      await moving.stop();
      // Some more, newer than any cutoff so far: they are what the last cutoff keeps.
      stoppedAt = Date.now();
      const enough = bursts + 10;
      while (bursts < enough) await sleep(20);
    } finally {
      producing = false;
      await producer;
    }
    expect(problems.slice(0, 10)).toEqual([]);
    expect(passes).toBeGreaterThan(4);
    // An occasional lock conflict is retried; a cleaner that conflicts with every batch is not.
    expect(complaints.length, complaints.slice(0, 3).join('\n')).toBeLessThan(5);

    await waitSettled(runtime);
    // The last cutoff is where the cleaners stopped, however long what followed took.
    const cutoff = stoppedAt;
    await cleaner(() => cutoff + 300, 300, 7).runOnce();
    const model = replayLog(await readWholeLog(runtime.backend), commandLimits(made.config));
    expect(await brokenFeeds(db)).toEqual([]);

    // What stays is exactly what the log delivered at or after the last cutoff.
    const stored = await deliveries(db, workload.uids);
    const expected = workload.uids.flatMap((u) =>
      (model.users.get(u)?.deliveries ?? [])
        .filter((d) => d.ts >= cutoff)
        .map((d) => ({ uid: u, seq: d.seq, event_id: d.eventId, ts: d.ts })),
    );
    expect(stored).toEqual(expected.sort((x, y) => x.uid - y.uid || x.seq - y.seq));
    expect(stored.length).toBeGreaterThan(0);
    const s = await states(db, workload.uids);
    for (const u of workload.uids) {
      const feed = model.users.get(u)?.deliveries ?? [];
      if (feed.length === 0) continue;
      const kept = feed.find((d) => d.ts >= cutoff);
      expect(s.get(u), `uid ${u}`).toEqual({
        head: feed.length,
        floor: kept ? kept.seq : feed.length + 1,
      });
    }
  }, 60_000);
});
