import fs from 'node:fs';
import path from 'node:path';
import Sqlite from 'better-sqlite3';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.js';
import { openBackend } from '../../src/backend.js';
import { partitionOfUid } from '../../src/domain/partitioner.js';
import { createLogger } from '../../src/logger.js';
import type { Runtime } from '../../src/runtime.js';
import { openDatabase, typed } from '../../src/store/database.js';
import { feedOf, send, startPipeline, waitSettled } from '../helpers/pipeline.js';
import { killAll, runMiniPush } from '../helpers/processes.js';
import { backendConfig, tempDir, type Backend, type TestBackend } from '../helpers/services.js';
import { Workload } from '../helpers/workload.js';

const PARTITIONS = 4;

type Row = Record<string, string | number | null>;

/** Every read-model row that the log determines, in a stable order, and the epoch. */
async function dump(db: Knex): Promise<Record<string, Row[]>> {
  const read = async (
    table: string,
    columns: string[],
    order: string[],
    where: Record<string, string> = {},
  ) => {
    const rows = await typed<Array<Record<string, unknown>>>(
      db(table).where(where).select(columns).orderBy(order),
    );
    return rows.map((row) => {
      const out: Row = {};
      for (const column of columns) {
        const value = row[column];
        out[column] = Buffer.isBuffer(value)
          ? value.toString('hex')
          : typeof value === 'bigint'
            ? Number(value)
            : (value as string | number | null);
      }
      return out;
    });
  };
  return {
    events: await read(
      'events',
      ['log_partition', 'event_id', 'body', 'create_time', 'sender', 'ts'],
      ['log_partition', 'event_id'],
    ),
    user_events: await read('user_events', ['uid', 'seq', 'event_id', 'ts'], ['uid', 'seq']),
    user_states: await read(
      'user_states',
      [
        'uid',
        'log_partition',
        'head_seq',
        'floor_seq',
        'last_ts',
        'read_bitmap',
        'seen_bitmap',
        'archived_bitmap',
        'read_version',
      ],
      ['uid'],
    ),
    command_results: await read(
      'command_results',
      ['topic', 'log_partition', 'log_offset', 'changed', 'created_at'],
      ['topic', 'log_partition', 'log_offset'],
    ),
    // notified_offset is where the last batch began, and batches are cut by timing; updated_at
    // is the wall clock.
    projector_offsets: await read(
      'projector_offsets',
      ['topic', 'log_partition', 'next_offset'],
      ['topic', 'log_partition'],
    ),
    projector_forwards: await read(
      'projector_forwards',
      ['topic', 'log_partition', 'source_partition', 'source_offset'],
      ['topic', 'log_partition', 'source_partition'],
    ),
    publish_conflicts: await read(
      'publish_conflicts',
      ['topic', 'log_partition', 'log_offset', 'event_id', 'reason', 'created_at'],
      ['topic', 'log_partition', 'log_offset'],
    ),
    minipush_meta: (await read('minipush_meta', ['name', 'value'], ['name'])).filter(
      (row) => row.name !== 'epoch',
    ),
    // The read model's identity: a rebuild makes a new one (read caches forget on it).
    epoch: await read('minipush_meta', ['value'], ['value'], { name: 'epoch' }),
  };
}

function cliEnv(config: Config): Record<string, string> {
  return {
    MINIPUSH_DATA_DIR: config.dataDir,
    MINIPUSH_KAFKA_BROKERS: config.kafkaBrokers.join(','),
    MINIPUSH_MYSQL_URL: config.mysqlUrl,
    MINIPUSH_TOPIC_PREFIX: config.topicPrefix,
    MINIPUSH_PARTITIONS: String(config.partitions),
    MINIPUSH_LOG_LEVEL: 'warn',
  };
}

describe.each<Backend>(['kafka+mysql', 'embedded'])('minipush rebuild on %s', (kind) => {
  let made: TestBackend;
  let config: Config;
  let db: Knex;
  let cwd: string;
  let runtime: Runtime | null = null;

  beforeAll(async () => {
    made = await backendConfig(kind, { roles: ['projector'], partitions: PARTITIONS });
    config = made.config;
    db = openDatabase({ mysqlUrl: config.mysqlUrl, dataDir: config.dataDir });
    cwd = tempDir();
  });

  afterAll(async () => {
    await killAll();
    await runtime?.close();
    await db?.destroy();
    await made?.cleanup();
    if (cwd) fs.rmSync(cwd, { recursive: true, force: true });
  });

  async function rebuild(): Promise<{ code: number | null; output: string }> {
    const child = runMiniPush(['rebuild'], cliEnv(config), { cwd });
    const { code } = await child.exited;
    return { code, output: child.output() };
  }

  it('should rebuild identical rows from the log, and projection should go on after it', async () => {
    runtime = await startPipeline(config);
    const workload = new Workload(PARTITIONS, 60);
    for (let i = 0; i < 40; i++) {
      const burst = workload.burst(25);
      await runtime.backend.log.append(burst.records);
      burst.accept();
    }
    await waitSettled(runtime);
    await runtime.close();
    runtime = null;
    const before = await dump(db);
    expect(before.user_events!.length).toBeGreaterThan(500);
    expect(before.command_results!.length).toBeGreaterThan(100);
    expect(before.projector_forwards!.length).toBeGreaterThan(0);

    const { code, output } = await rebuild();
    expect(code, output).toBe(0);
    const line =
      /rebuilt (\d+) deliveries from (\d+) records up to offsets ([\d,]+) in [\d.]+ s \((\d+) deliveries\/s\)/.exec(
        output,
      );
    expect(line, output).not.toBeNull();
    expect(Number(line![1])).toBe(before.user_events!.length);
    expect(line![3]!.split(',').map(Number)).toEqual(
      before.projector_offsets!.map((row) => row.next_offset),
    );
    expect(Number(line![4])).toBeGreaterThan(0);

    const after = await dump(db);
    for (const table of Object.keys(before).filter((name) => name !== 'epoch')) {
      expect(after[table], table).toEqual(before[table]);
    }
    expect(after.epoch).toHaveLength(1);
    expect(after.epoch).not.toEqual(before.epoch);

    // Records re-routed again by the rebuild lie past its end; the next projector dedupes them.
    runtime = await startPipeline(config);
    const uid = workload.uids[0]!;
    const head = (await feedOf(db, uid)).length;
    await send(runtime, { v: 1, type: 'publish', id: `after-rebuild-${uid}`, to: [uid], body: 1 });
    await waitSettled(runtime);
    await runtime.close();
    runtime = null;
    const later = await dump(db);
    expect(later.user_events).toEqual(
      [
        ...before.user_events!,
        {
          uid,
          seq: head + 1,
          event_id: `after-rebuild-${uid}`,
          ts: later.user_events!.find((row) => row.event_id === `after-rebuild-${uid}`)!.ts,
        },
      ].sort((a, b) => Number(a.uid) - Number(b.uid) || Number(a.seq) - Number(b.seq)),
    );
  });

  if (kind === 'kafka+mysql') {
    it('should refuse while a projector is running, and leave the tables alone', async () => {
      runtime = await startPipeline(config);
      await waitSettled(runtime);
      const before = await dump(db);
      const { code, output } = await rebuild();
      await runtime.close();
      runtime = null;
      expect(code, output).toBe(1);
      expect(output).toContain('refused: consumer group');
      expect(output).toContain('live member(s): stop every projector first');
      expect(await dump(db)).toEqual(before);
    });
  }

  it('should refuse when retention removed the start of the log, and leave the tables alone', async () => {
    const before = await dump(db);
    const uid = 77;
    const partition = partitionOfUid(uid, PARTITIONS);
    if (kind === 'kafka+mysql') {
      const backend = openBackend(config, createLogger('warn'));
      const admin = backend.kafka!.admin();
      await admin.connect();
      await admin.fetchTopicMetadata({ topics: [backend.topics.commands] });
      await admin.deleteTopicRecords({
        topic: backend.topics.commands,
        partitions: [{ partition, offset: '1' }],
      });
      await admin.disconnect();
      await backend.close();
    } else {
      // What the embedded log's retention does to old records.
      const log = new Sqlite(path.join(config.dataDir, 'log.db'));
      log
        .prepare('DELETE FROM log_records WHERE topic = ? AND partition = ? AND offset = 0')
        .run(`${config.topicPrefix}.commands`, partition);
      log.close();
    }
    const { code, output } = await rebuild();
    expect(code, output).toBe(1);
    expect(output).toContain(
      `refused: the commands log no longer starts at offset 0 (partition:first offset ${partition}:1)`,
    );
    expect(await dump(db)).toEqual(before);
  });
});
