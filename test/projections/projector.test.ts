import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCommand } from '../../src/commands/command-record.js';
import { toAppendRecords } from '../../src/commands/command-writer.js';
import { partitionOfUid } from '../../src/domain/partitioner.js';
import { decodeBitmap } from '../../src/domain/read-bitmap.js';
import { HEADERS } from '../../src/log/log.js';
import { getCommandResult } from '../../src/queries/get-publish-result.js';
import { getStats } from '../../src/queries/get-stats.js';
import { StoreUserViews } from '../../src/queries/user-view.js';
import type { Runtime } from '../../src/runtime.js';
import { backendConfig, type Backend } from '../helpers/services.js';
import {
  feedOf,
  readDeadLetters,
  send,
  waitApplied,
  waitCaughtUp,
  watchChanges,
} from '../helpers/pipeline.js';
import { startPipeline } from '../helpers/pipeline.js';
import { readWholeLog } from '../helpers/projection-model.js';
import { typed } from '../../src/store/database.js';

let nextUid = 1000;
const freshUid = () => nextUid++;

describe.each<Backend>(['kafka+mysql', 'embedded'])('projector on %s', (backend) => {
  let runtime: Runtime;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const made = await backendConfig(backend, { roles: ['projector'] });
    cleanup = () => made.cleanup();
    runtime = await startPipeline(made.config);
  });

  afterAll(async () => {
    await runtime?.close();
    await cleanup?.();
  });

  it('should give each recipient gap-free seqs in log order and store the body once per partition', async () => {
    const partitions = await runtime.backend.log.partitionCount();
    const a = freshUid();
    let b = freshUid();
    while (partitionOfUid(b, partitions) === partitionOfUid(a, partitions)) b = freshUid();
    await send(runtime, {
      v: 1,
      type: 'publish',
      id: `e1-${a}`,
      to: [a, b],
      body: { n: 1 },
      createTime: 111,
    });
    await send(runtime, { v: 1, type: 'publish', id: `e2-${a}`, to: [a], body: { n: 2 } });
    await send(runtime, { v: 1, type: 'publish', id: `e3-${a}`, to: [b, a], body: { n: 3 } });
    const { db } = runtime.backend;
    expect(await feedOf(db, a)).toEqual([
      { seq: 1, event_id: `e1-${a}` },
      { seq: 2, event_id: `e2-${a}` },
      { seq: 3, event_id: `e3-${a}` },
    ]);
    expect(await feedOf(db, b)).toEqual([
      { seq: 1, event_id: `e1-${a}` },
      { seq: 2, event_id: `e3-${a}` },
    ]);
    // One copy for each partition holding recipients: neither waits on the other's row.
    const events = await typed<Array<{ log_partition: number; body: string; create_time: number }>>(
      db('events')
        .where('event_id', `e1-${a}`)
        .orderBy('log_partition')
        .select('log_partition', 'body', 'create_time'),
    );
    expect(events.map((e) => e.log_partition)).toEqual(
      [partitionOfUid(a, partitions), partitionOfUid(b, partitions)].sort((x, y) => x - y),
    );
    for (const event of events) {
      expect(JSON.parse(event.body)).toEqual({ n: 1 });
      expect(Number(event.create_time)).toBe(111);
    }
    expect(await getStats(new StoreUserViews(db), a)).toMatchObject({
      headSeq: 3,
      floorSeq: 1,
      unreadCount: 3,
    });
  });

  it('should deliver a re-sent id once per recipient with the first content, and report other content', async () => {
    const partitions = await runtime.backend.log.partitionCount();
    const a = freshUid();
    let b = freshUid();
    while (partitionOfUid(b, partitions) !== partitionOfUid(a, partitions)) b = freshUid();
    const id = `dup-${a}`;
    const positions = [
      await send(runtime, { v: 1, type: 'publish', id, to: [a], body: 'first' }),
      await send(runtime, { v: 1, type: 'publish', id, to: [a], body: 'first', createTime: 9 }),
      await send(runtime, { v: 1, type: 'publish', id, to: [a], body: 'again' }),
      await send(runtime, { v: 1, type: 'publish', id, to: [a, b], body: 'again' }),
    ].map((p) => p[0]!);
    const { db } = runtime.backend;
    expect(await feedOf(db, a)).toEqual([{ seq: 1, event_id: id }]);
    // A new recipient on the partition gets the content it holds: the first.
    expect(await feedOf(db, b)).toEqual([{ seq: 1, event_id: id }]);
    const copies = await typed<Array<{ body: string }>>(
      db('events').where('event_id', id).select('body'),
    );
    expect(copies.map((c) => JSON.parse(c.body) as unknown)).toEqual(['first']);
    // A retry (same body; its createTime does not count) is not a conflict; other content is.
    const conflicts = await typed<Array<{ log_offset: number | string; reason: string }>>(
      db('publish_conflicts')
        .where({ event_id: id })
        .orderBy('log_offset')
        .select('log_offset', 'reason'),
    );
    expect(conflicts.map((c) => Number(c.log_offset))).toEqual([
      positions[2]!.offset,
      positions[3]!.offset,
    ]);
    expect(conflicts[0]!.reason).toBe(
      `idempotency conflict: event id ${id} was published before with another body; the first content stays`,
    );
    expect(conflicts[1]!.reason).toMatch(/the first content stays and went to the 1 new recipient/);
    // And the producer, who has no answer to read, finds them in the dead-letter topic.
    const letters = await readDeadLetters(runtime.backend, (letter) => letter.key === id, 2);
    expect(letters.map((l) => l.headers['minipush-dlq-reason'])).toEqual(
      conflicts.map((c) => c.reason),
    );
    expect(letters.map((l) => l.headers['minipush-dlq-field'])).toEqual(['id', 'id']);
  });

  it("should keep each partition's first content of an id, whatever order other partitions saw", async () => {
    const partitions = await runtime.backend.log.partitionCount();
    const a = freshUid();
    let b = freshUid();
    while (partitionOfUid(b, partitions) === partitionOfUid(a, partitions)) b = freshUid();
    const early = { body: { v: 'early' }, createTime: 100, from: 5 };
    const late = { body: { v: 'late' }, createTime: 200, from: 3 };
    // One id reaches a's partition first with one content and b's with the other.
    await send(runtime, { v: 1, type: 'publish', id: `split-${a}`, to: [a], ...late });
    await send(runtime, { v: 1, type: 'publish', id: `split-${a}`, to: [b], ...early });
    await send(runtime, { v: 1, type: 'publish', id: `split-${a}`, to: [b], ...late });
    const rows = await typed<
      Array<{ log_partition: number; body: string; create_time: number; sender: number }>
    >(
      runtime.backend
        .db('events')
        .where('event_id', `split-${a}`)
        .select('log_partition', 'body', 'create_time', 'sender'),
    );
    const byPartition = new Map(
      rows.map((r) => [
        r.log_partition,
        [JSON.parse(r.body) as unknown, Number(r.create_time), r.sender],
      ]),
    );
    expect(byPartition).toEqual(
      new Map([
        [partitionOfUid(a, partitions), [{ v: 'late' }, 200, 3]],
        [partitionOfUid(b, partitions), [{ v: 'early' }, 100, 5]],
      ]),
    );
  });

  it('should store no read bitmap for a user with nothing read, however records were batched', async () => {
    const uid = freshUid();
    const partitions = await runtime.backend.log.partitionCount();
    // Appended together so one batch creates the user and decodes its (empty) bitmap.
    const positions = await runtime.backend.log.append([
      ...toAppendRecords(
        { v: 1, type: 'publish', id: `nr-${uid}`, to: [uid], body: 1 },
        partitions,
      ),
      ...toAppendRecords({ v: 1, type: 'markRead', uid, seqs: [5] }, partitions),
    ]);
    await waitApplied(runtime, positions);
    const row = await typed<{ read_bitmap: Buffer | null }>(
      runtime.backend.db('user_states').where({ uid }).first('read_bitmap'),
    );
    expect(row.read_bitmap).toBeNull();
  });

  it("should age a read command's outcome by its log time, not the time it was applied", async () => {
    const uid = freshUid();
    await send(runtime, { v: 1, type: 'publish', id: `age-${uid}`, to: [uid], body: 1 });
    const [position] = await send(runtime, { v: 1, type: 'markRead', uid, seqs: [1] });
    const records = (await readWholeLog(runtime.backend))[position!.partition]!;
    const record = records.find((r) => r.offset === position!.offset)!;
    const row = await typed<{ created_at: number | string }>(
      runtime.backend
        .db('command_results')
        .where({
          topic: runtime.backend.log.topic,
          log_partition: position!.partition,
          log_offset: position!.offset,
        })
        .first('created_at'),
    );
    expect(Number(row.created_at)).toBe(record.timestamp);
  });

  it('should apply read marks to the bitmap and report how many seqs changed', async () => {
    const uid = freshUid();
    for (let i = 1; i <= 6; i++) {
      await send(runtime, { v: 1, type: 'publish', id: `r${i}-${uid}`, to: [uid], body: i });
    }
    const { db } = runtime.backend;
    const topic = runtime.backend.log.topic;
    const changedBy = async (positions: Awaited<ReturnType<typeof send>>) =>
      getCommandResult(db, topic, positions[0]!.partition, positions[0]!.offset);

    expect(
      await changedBy(await send(runtime, { v: 1, type: 'markRead', uid, seqs: [2, 4, 99] })),
    ).toBe(2);
    expect(await getStats(new StoreUserViews(db), uid)).toMatchObject({
      headSeq: 6,
      unreadCount: 4,
      readVersion: 1,
    });
    expect(await changedBy(await send(runtime, { v: 1, type: 'markReadUpTo', uid, upTo: 3 }))).toBe(
      2,
    );
    expect(await getStats(new StoreUserViews(db), uid)).toMatchObject({
      unreadCount: 2,
      readVersion: 2,
    });
    expect(
      await changedBy(await send(runtime, { v: 1, type: 'markUnread', uid, seqs: [1, 5] })),
    ).toBe(1);
    expect(await changedBy(await send(runtime, { v: 1, type: 'markRead', uid, seqs: [2] }))).toBe(
      0,
    );
    const stats = await getStats(new StoreUserViews(db), uid);
    expect(stats).toMatchObject({ unreadCount: 3, readVersion: 3 });
    const row = await typed<{
      read_bitmap: Buffer;
    }>(db('user_states').where({ uid }).first('read_bitmap'));
    expect(decodeBitmap(row.read_bitmap).toArray()).toEqual([2, 3, 4]);
    expect(
      await changedBy(await send(runtime, { v: 1, type: 'markReadUpTo', uid, upTo: 1000 })),
    ).toBe(3);
    expect(await getStats(new StoreUserViews(db), uid)).toMatchObject({ unreadCount: 0 });
  });

  it('should notify head changes with head, unread count and read version', async () => {
    const uid = freshUid();
    const watch = await watchChanges(runtime);
    try {
      await send(runtime, { v: 1, type: 'publish', id: `n1-${uid}`, to: [uid], body: 1 });
      await send(runtime, { v: 1, type: 'markRead', uid, seqs: [1] });
      const deadline = Date.now() + 20_000;
      while (watch.changes.filter((c) => c.uid === uid).length < 2 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const mine = watch.changes.filter((c) => c.uid === uid);
      expect(mine.map((c) => [c.headSeq, c.unreadCount, c.readVersion])).toEqual([
        [1, 1, 0],
        [1, 0, 1],
      ]);
    } finally {
      await watch.close();
    }
  });

  it('should dead-letter junk with a reason while later good commands project', async () => {
    const uid = freshUid();
    const partitions = await runtime.backend.log.partitionCount();
    const partition = partitionOfUid(uid, partitions);
    const junk = [
      Buffer.from('not json'),
      Buffer.from('{"v":1,"type":"publish","id":"x"'),
      Buffer.from(JSON.stringify({ v: 2, type: 'publish', id: 'v2', to: [uid], body: 1 })),
      Buffer.from(JSON.stringify({ v: 1, type: 'explode', uid })),
      Buffer.from(JSON.stringify({ v: 1, type: 'markRead', uid: -5, seqs: [1] })),
      Buffer.from(
        JSON.stringify({ v: 1, type: 'publish', id: 'big', to: [uid], body: 'x'.repeat(5000) }),
      ),
    ];
    const positions = await runtime.backend.log.append(
      junk.map((value) => ({
        partition,
        key: String(uid),
        value,
        headers: { marker: `junk-${uid}` },
      })),
    );
    await send(runtime, { v: 1, type: 'publish', id: `after-junk-${uid}`, to: [uid], body: 'ok' });
    await waitApplied(runtime, positions);
    expect(await feedOf(runtime.backend.db, uid)).toEqual([
      { seq: 1, event_id: `after-junk-${uid}` },
    ]);
    const letters = await readDeadLetters(
      runtime.backend,
      (l) => l.headers.marker === `junk-${uid}`,
      junk.length,
    );
    const mine = letters.map((l) => l.headers[HEADERS.deadLetterReason]);
    expect(letters.map((l) => l.headers[HEADERS.deadLetterSource])).toEqual(
      positions.map((p) => `${runtime.backend.log.topic}:${p.partition}:${p.offset}`),
    );
    expect(mine).toEqual([
      'record value is not valid JSON',
      'record value is not valid JSON',
      'unsupported schema version 2; this build reads v1',
      'unknown command type "explode"; expected publish, markRead, markReadUpTo, markUnread, markSeen, markSeenUpTo, archive, archiveUpTo, unarchive, unarchiveUpTo, expire',
      'uid must be an unsigned 32-bit integer',
      'body is 5002 bytes as JSON; the limit is 4096',
    ]);
  });

  it('should re-route a publish produced to any partition, once, to the recipients’ partitions', async () => {
    const uids = [freshUid(), freshUid(), freshUid(), freshUid(), freshUid()];
    const id = `routed-${uids[0]}`;
    const value = encodeCommand({ v: 1, type: 'publish', id, to: uids, body: { routed: true } });
    // A business server producing directly, keyed by event id onto partition 0.
    const positions = await runtime.backend.log.append([{ partition: 0, key: id, value }]);
    await waitApplied(runtime, positions);
    await waitCaughtUp(runtime);
    for (const uid of uids) {
      expect(await feedOf(runtime.backend.db, uid)).toEqual([{ seq: 1, event_id: id }]);
    }
    // The same forwarded record delivered twice (a projector killed after forwarding) applies once.
    const partitions = await runtime.backend.log.partitionCount();
    const target = partitionOfUid(uids[1]!, partitions);
    if (target !== 0) {
      const again = await runtime.backend.log.append([
        {
          partition: target,
          key: id,
          value: encodeCommand({
            v: 1,
            type: 'publish',
            id: `${id}-replay`,
            to: [uids[1]!],
            body: 1,
          }),
          headers: { [HEADERS.origin]: `0:${positions[0]!.offset}` },
        },
      ]);
      await waitApplied(runtime, again);
      expect(await feedOf(runtime.backend.db, uids[1]!)).toEqual([{ seq: 1, event_id: id }]);
    }
  });
});
