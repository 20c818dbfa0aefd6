import { randomInt } from 'node:crypto';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBackend, prepareBackend, type Backend } from '../../src/backend.js';
import { createLogger } from '../../src/logger.js';
import { commandLimits } from '../../src/config.js';
import { typed } from '../../src/store/database.js';
import { eventually } from '../helpers/pipeline.js';
import { killAll, runMiniPush, type MiniPushProcess } from '../helpers/processes.js';
import {
  differences,
  readProjection,
  readWholeLog,
  replayLog,
} from '../helpers/projection-model.js';
import { backendConfig, tempDir, type TestBackend } from '../helpers/services.js';
import { Workload } from '../helpers/workload.js';

const PARTITIONS = 4;
const KILLS = 5;

describe('projector process on kafka+mysql', () => {
  let made: TestBackend;
  let backend: Backend;
  let cwd: string;
  let childEnv: Record<string, string>;

  beforeAll(async () => {
    made = await backendConfig('kafka+mysql', { partitions: PARTITIONS });
    backend = openBackend(made.config, createLogger('warn'));
    await prepareBackend(made.config, backend, createLogger('warn'));
    cwd = tempDir();
    childEnv = {
      MINIPUSH_KAFKA_BROKERS: made.config.kafkaBrokers.join(','),
      MINIPUSH_MYSQL_URL: made.config.mysqlUrl,
      MINIPUSH_TOPIC_PREFIX: made.config.topicPrefix,
      MINIPUSH_PARTITIONS: String(PARTITIONS),
      MINIPUSH_LOG_LEVEL: 'warn',
      // The killed member holds its partitions until the session times out; keep restarts quick.
      MINIPUSH_KAFKA_SESSION_TIMEOUT: '6s',
    };
  });

  afterAll(async () => {
    await killAll();
    await backend?.close();
    await made?.cleanup();
    if (cwd) fs.rmSync(cwd, { recursive: true, force: true });
  });

  const topic = () => backend.log.topic;

  async function appliedOffsets(): Promise<number[]> {
    const rows = await typed<Array<{ log_partition: number; next_offset: number | string }>>(
      backend
        .db('projector_offsets')
        .where({ topic: topic() })
        .select('log_partition', 'next_offset'),
    );
    const out = Array.from({ length: PARTITIONS }, () => 0);
    for (const row of rows) out[row.log_partition] = Number(row.next_offset);
    return out;
  }

  const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

  /** Offsets applied so far; fails at once, with its output, when the projector has exited. */
  async function appliedBy(child: MiniPushProcess): Promise<number> {
    if (!child.isAlive()) throw new Error(`the projector exited:\n${child.output()}`);
    return sum(await appliedOffsets());
  }

  it('should apply every command exactly once although its process is SIGKILLed mid-stream and restarted', async () => {
    const workload = new Workload(PARTITIONS, 300);
    let producing = true;
    let produced = 0;
    const producer = (async () => {
      while (producing) {
        const burst = workload.burst(20);
        await backend.log.append(burst.records);
        burst.accept();
        produced += burst.records.length;
        await sleep(randomInt(20, 60));
      }
    })();

    const kills: Array<{ applied: number; lag: number }> = [];
    let child: MiniPushProcess | null = null;
    try {
      for (let i = 0; i < KILLS; i++) {
        child = runMiniPush(['serve', '--roles', 'projector'], childEnv, { cwd });
        const before = sum(await appliedOffsets());
        // This incarnation joined the group and committed batches of its own.
        const incarnation = child;
        await eventually(
          () => appliedBy(incarnation),
          (applied) => applied > before + 50,
          40_000,
        );
        await sleep(randomInt(100, 1500));
        // Kill only while records wait to be applied, so the process has work in hand.
        const lag = await eventually(
          async () => sum(await backend.log.endOffsets()) - sum(await appliedOffsets()),
          (behind) => behind > 0,
          10_000,
        );
        expect(child.isAlive(), child.output()).toBe(true);
        await child.kill('SIGKILL');
        kills.push({ applied: sum(await appliedOffsets()), lag });
      }
    } finally {
      producing = false;
      await producer;
    }

    child = runMiniPush(['serve', '--roles', 'projector'], childEnv, { cwd });
    // Caught up: every partition applied up to an end that did not move while we looked
    // (forwarded records are appended before the batch that forwards them commits).
    await eventually(
      async () => {
        const ends = await backend.log.endOffsets();
        const applied = await appliedOffsets();
        const again = await backend.log.endOffsets();
        return ends.every((end, p) => end === again[p] && applied[p]! >= end);
      },
      (done) => done,
      90_000,
    ).catch((err: unknown) => {
      throw new Error(`projector did not catch up: ${String(err)}\n${child.output()}`);
    });
    expect(child.isAlive(), child.output()).toBe(true);
    await child.kill('SIGTERM');

    expect(kills).toHaveLength(KILLS);
    for (const [i, kill] of kills.entries()) {
      expect(kill.lag).toBeGreaterThan(0);
      if (i > 0) expect(kill.applied).toBeGreaterThan(kills[i - 1]!.applied);
    }
    expect(produced).toBeGreaterThan(1000);

    const stored = await readProjection(backend.db, topic());

    // Every user's feed is exactly 1..head, and the head is its newest seq.
    const gaps: string[] = [];
    for (const [uid, feed] of stored.deliveries) {
      const head = stored.users.get(uid)?.headSeq;
      if (feed.some((d, i) => d.seq !== i + 1) || head !== feed.length) {
        gaps.push(`${uid}: seqs ${feed.map((d) => d.seq).join(',')} head ${head}`);
      }
    }
    expect(gaps).toEqual([]);

    // Every accepted (event id, uid) is there exactly once, and nothing else is.
    const expectedPairs = [...workload.accepted].flatMap(([id, to]) =>
      [...to].map((uid) => `${id} ${uid}`),
    );
    const storedPairs = [...stored.deliveries].flatMap(([uid, feed]) =>
      feed.map((d) => `${d.eventId} ${uid}`),
    );
    expect(new Set(storedPairs).size).toBe(storedPairs.length);
    expect(storedPairs.sort()).toEqual(expectedPairs.sort());

    // Seqs, read state and command outcomes are what the log implies, in its order.
    const model = replayLog(await readWholeLog(backend), commandLimits(made.config));
    expect(model.junk).toBeGreaterThan(0);
    expect(differences(model, stored).slice(0, 10)).toEqual([]);
    expect(stored.deliveries.size).toBe(
      [...model.users.values()].filter((u) => u.deliveries.length > 0).length,
    );
    expect(Object.fromEntries(stored.results)).toEqual(Object.fromEntries(model.results));
  }, 150_000);
});
