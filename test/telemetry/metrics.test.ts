import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { partitionOfUid } from '../../src/domain/partitioner.js';
import { projectorLag } from '../../src/telemetry/projector-lag.js';
import { loadPackageDefinition } from '../../src/transports/grpc/server.js';
import { eventually } from '../helpers/pipeline.js';
import { scrape, valueOf, type Sample } from '../helpers/prometheus.js';
import { signUserToken, startStack, type Stack } from '../helpers/stack.js';
import { connect, type TestSocket } from '../helpers/ws-client.js';

const PARTITIONS = 4;

describe('metrics on kafka+mysql', () => {
  let stack: Stack;
  const sockets: TestSocket[] = [];

  beforeAll(async () => {
    stack = await startStack(
      'kafka+mysql',
      {
        partitions: PARTITIONS,
        sessionQuota: 1,
        nudgeWindowMs: 1000,
        eventTtlMs: 1000,
        cleanerIntervalMs: 200,
      },
      ['api', 'hub', 'projector', 'cleaner'],
    );
  });

  afterAll(async () => {
    await Promise.all(sockets.map((s) => s.close().catch(() => undefined)));
    await stack?.close();
  });

  async function session(uid: number): Promise<TestSocket> {
    const socket = await connect(`${stack.url.replace('http', 'ws')}/v1/ws`, {
      token: await signUserToken(uid),
    });
    sockets.push(socket);
    await socket.next((m) => m.type === 'hello');
    return socket;
  }

  it('should expose every metric with values that match the traffic', async () => {
    const uid = 510_001;
    const first = await session(uid);
    // Four publishes, each projected before the next: one nudge at once, the rest coalesced.
    for (let i = 1; i <= 4; i++) {
      const res = await stack.call('POST', '/v1/events?wait=true', {
        body: { to: [uid], body: i },
      });
      expect(res.status).toBe(200);
    }
    await first.next((m) => m.type === 'head' && m.headSeq === 4, 10_000);

    // A second session with a quota of one kicks off the first.
    const second = await session(uid);
    await first.next((m) => m.type === 'kickoff', 20_000);
    expect((await first.closed).code).toBe(4500);

    // One query per transport.
    expect((await second.request('stats')).type).toBe('stats');
    const auth = await stack.userAuth(uid);
    expect((await stack.call('GET', `/v1/users/${uid}/events?after=0`, { auth })).status).toBe(200);
    const loaded = grpc.loadPackageDefinition(loadPackageDefinition()) as any;
    const query = new loaded.minipush.v1.QueryService(
      `127.0.0.1:${stack.runtime.grpcPort}`,
      grpc.credentials.createInsecure(),
    );
    const md = new grpc.Metadata();
    md.set('authorization', auth);
    await new Promise((resolve, reject) =>
      query.GetStats({ uid }, md, (err: grpc.ServiceError | null, res: unknown) =>
        err ? reject(err) : resolve(res),
      ),
    );
    query.close();

    // A record no projector can read goes to the dead-letter topic.
    await stack.runtime.backend.log.append([
      { partition: 0, key: 'junk', value: Buffer.from('{not json') },
    ]);

    // The cleaner deletes the four events once they are past the one-second TTL.
    let samples: Sample[] = [];
    let contentType = '';
    await eventually(
      async () => {
        ({ samples, contentType } = await scrape(stack.url));
        return samples;
      },
      (s) =>
        valueOf(s, 'minipush_cleaner_deleted_total', { table: 'user_events' }) === 4 &&
        valueOf(s, 'minipush_dead_letters_total') === 1,
      20_000,
    );
    const v = (name: string, labels?: Record<string, string>) => valueOf(samples, name, labels);

    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(v('minipush_commands_total', { type: 'publish' })).toBe(4);
    expect(v('minipush_commands_total', { type: 'markRead' })).toBeUndefined();

    // Every record was applied in some batch: four publishes, the junk one, and the cleaner's
    // expire commands (at least one, as it deleted the four deliveries).
    const records = (await stack.runtime.backend.log.endOffsets()).reduce((a, b) => a + b, 0);
    expect(records).toBeGreaterThan(5);
    expect(v('minipush_projector_batch_records_sum')).toBe(records);
    const home = String(partitionOfUid(uid, PARTITIONS));
    expect(v('minipush_projector_batch_records_count', { partition: home })).toBeGreaterThan(0);
    expect(v('minipush_projector_batch_records_bucket', { partition: home, le: '+Inf' })).toBe(
      v('minipush_projector_batch_records_count', { partition: home }),
    );
    expect(v('minipush_projector_batch_duration_seconds_sum', { partition: home })).toBeGreaterThan(
      0,
    );
    // Every batch is timed by phase, and its phases fit inside its time.
    const batches = v('minipush_projector_batch_duration_seconds_count')!;
    for (const phase of ['load', 'apply', 'write', 'notify', 'route']) {
      expect(v('minipush_projector_batch_phase_seconds_count', { phase })).toBe(batches);
    }
    expect(v('minipush_projector_batch_phase_seconds_sum', { phase: 'write' })).toBeGreaterThan(0);
    expect(v('minipush_projector_batch_phase_seconds_sum')).toBeLessThanOrEqual(
      v('minipush_projector_batch_duration_seconds_sum')!,
    );
    // Each batch says how long its oldest record waited in the log before it began.
    expect(v('minipush_projector_record_wait_seconds_count')).toBe(batches);
    expect(v('minipush_projector_record_wait_seconds_sum')).toBeGreaterThan(0);
    expect(v('minipush_projector_deliveries_total', { partition: home })).toBe(4);
    expect(v('minipush_dead_letters_total', { partition: '0' })).toBe(1);
    for (let p = 0; p < PARTITIONS; p++)
      expect(v('minipush_projector_lag', { partition: String(p) })).toBe(0);

    // Sessions: two opened, the first kicked off, one live.
    expect(v('minipush_sessions_opened_total')).toBe(2);
    expect(v('minipush_sessions_closed_total', { code: '4500' })).toBe(1);
    expect(v('minipush_kickoffs_total')).toBe(1);
    expect(v('minipush_sessions')).toBe(1);
    expect(v('minipush_session_users')).toBe(1);

    // Nudges: the first at once, the next ones merged into one after the window.
    expect(v('minipush_nudges_sent_total')).toBeGreaterThanOrEqual(2);
    expect(v('minipush_nudges_coalesced_total')).toBeGreaterThanOrEqual(1);
    const nudged = v('minipush_publish_to_nudge_seconds_count')!;
    expect(nudged).toBe(v('minipush_nudges_sent_total'));
    expect(v('minipush_publish_to_nudge_seconds_bucket', { le: '+Inf' })).toBe(nudged);
    expect(v('minipush_publish_to_nudge_seconds_bucket', { le: '10' })).toBe(nudged);
    expect(v('minipush_publish_to_nudge_seconds_sum')).toBeGreaterThan(0);

    // Request latency by transport and route.
    const requests = 'minipush_request_duration_seconds_count';
    expect(v(requests, { transport: 'http', route: 'POST /v1/events', outcome: '200' })).toBe(4);
    expect(
      v(requests, { transport: 'http', route: 'GET /v1/users/:uid/events', outcome: '200' }),
    ).toBe(1);
    expect(
      v(requests, {
        transport: 'grpc',
        route: '/minipush.v1.QueryService/GetStats',
        outcome: 'OK',
      }),
    ).toBe(1);
    expect(v(requests, { transport: 'ws', route: 'stats', outcome: 'ok' })).toBe(1);
    expect(
      v('minipush_request_duration_seconds_bucket', {
        transport: 'http',
        route: 'POST /v1/events',
        le: '+Inf',
      }),
    ).toBe(4);

    // The cleaner's passes and deletions by table.
    expect(v('minipush_cleaner_passes_total')).toBeGreaterThanOrEqual(1);
    expect(v('minipush_cleaner_deleted_total', { table: 'events' })).toBe(4);

    // Process defaults come along.
    expect(v('process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(v('nodejs_eventloop_lag_seconds')).toBeDefined();
  });
});

describe('projector lag', () => {
  let stack: Stack;

  beforeAll(async () => {
    // No projector: whatever is appended stays unapplied.
    stack = await startStack('kafka+mysql', { partitions: PARTITIONS }, ['api']);
  });

  afterAll(async () => {
    await stack?.close();
  });

  it('should count the records appended but not yet applied, per partition', async () => {
    const uid = 520_002;
    for (let i = 0; i < 3; i++)
      expect(
        (await stack.call('POST', '/v1/events', { body: { to: [uid], body: i } })).status,
      ).toBe(202);
    const lags = await projectorLag(stack.runtime.backend.db, stack.runtime.backend.log);
    const home = partitionOfUid(uid, PARTITIONS);
    expect(lags).toEqual(
      Array.from({ length: PARTITIONS }, (_, partition) => ({
        partition,
        lag: partition === home ? 3 : 0,
      })),
    );
  });
});

describe('a projector-only process', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack('kafka+mysql', { partitions: PARTITIONS }, ['projector']);
  });

  afterAll(async () => {
    await stack?.close();
  });

  it('should serve health and metrics but not the API on its HTTP port', async () => {
    const { samples } = await scrape(stack.url);
    for (let p = 0; p < PARTITIONS; p++)
      expect(valueOf(samples, 'minipush_projector_lag', { partition: String(p) })).toBe(0);
    expect((await stack.call('GET', '/healthz')).status).toBe(200);
    const ready = await stack.call('GET', '/readyz');
    expect(ready).toMatchObject({ status: 200, body: { status: 'ready' } });
    expect(ready.body.checks.projector).toBe('ok');
    const api = await stack.call('POST', '/v1/events', { body: { to: [1], body: 1 } });
    expect(api).toMatchObject({ status: 404, body: { error: { code: 'MINIPUSH_NOT_FOUND' } } });
  });
});
