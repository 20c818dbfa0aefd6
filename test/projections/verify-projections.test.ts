import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configEnv, type Config } from '../../src/config.js';
import { verifyProjections } from '../../src/projections/verify-projections.js';
import type { Runtime } from '../../src/runtime.js';
import { startPipeline } from '../helpers/pipeline.js';
import { backendConfig, type Backend } from '../helpers/services.js';

const service = { kind: 'service' } as const;

describe.each<Backend>(['kafka+mysql', 'embedded'])('verifyProjections on %s', (backend) => {
  let runtime: Runtime;
  let config: Config;
  let cleanup: () => Promise<void>;

  async function cli(): Promise<{ code: number; report: any }> {
    const env = configEnv({
      kafkaBrokers: config.kafkaBrokers,
      mysqlUrl: config.mysqlUrl,
      dataDir: config.dataDir,
      topicPrefix: config.topicPrefix,
      partitions: config.partitions,
      logLevel: 'warn',
    });
    const bin = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
    try {
      const { stdout } = await promisify(execFile)(process.execPath, [bin, 'verify'], {
        env: { PATH: process.env.PATH, ...env },
      });
      return { code: 0, report: JSON.parse(stdout) };
    } catch (err) {
      const failed = err as { code: number; stdout: string };
      return { code: failed.code, report: JSON.parse(failed.stdout) };
    }
  }

  beforeAll(async () => {
    const made = await backendConfig(backend, { roles: ['api', 'projector'] });
    cleanup = () => made.cleanup();
    config = made.config;
    runtime = await startPipeline(made.config);
    for (let i = 0; i < 5; i++) {
      await runtime.service.publish(
        service,
        { id: `v${i}`, to: [1, 2, 3], body: i },
        { wait: true },
      );
    }
    await runtime.service.markRead(service, 1, { upTo: 3 }, { wait: true });
  });

  afterAll(async () => {
    await runtime?.close();
    await cleanup?.();
  });

  it('should find nothing wrong in a healthy projection', async () => {
    const report = await verifyProjections(runtime.backend.db, {
      topic: runtime.backend.log.topic,
      logEnds: await runtime.backend.log.endOffsets(),
    });
    expect(report).toMatchObject({ ok: true, users: 3, deliveries: 15, events: 5, violations: [] });
    expect(await cli()).toMatchObject({ code: 0, report: { ok: true, users: 3 } });
  });

  it('should report a gap, a wrong head, an orphan, a missing event and read bits past the head', async () => {
    const { db } = runtime.backend;
    await db('user_events').where({ uid: 2, seq: 3 }).delete();
    await db('user_states').where({ uid: 3 }).update({ head_seq: 9 });
    await db('user_events').insert({ uid: 77, seq: 1, event_id: 'v0', ts: 1 });
    await db('events').where({ event_id: 'v4' }).delete();
    await db('user_states').where({ uid: 1 }).update({ head_seq: 2 });
    const report = await verifyProjections(db, { chunk: 2 });
    expect(report.ok).toBe(false);
    const kinds = report.violations.map((v) => `${v.kind}:${v.uid ?? ''}`).sort();
    expect(kinds).toEqual(
      [
        'head-mismatch:1',
        'read-beyond-head:1',
        'seq-gap:2',
        'head-mismatch:3',
        'orphan-deliveries:77',
        'missing-event:1',
        'missing-event:2',
        'missing-event:3',
      ].sort(),
    );
    const run = await cli();
    expect(run.code).toBe(1);
    expect(run.report.ok).toBe(false);
    expect(run.report.violations).toHaveLength(8);
  });
});
