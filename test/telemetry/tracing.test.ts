import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBackend, prepareBackend } from '../../src/backend.js';
import { deploymentEnv } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { SPAN } from '../../src/telemetry/spans.js';
import {
  startOtlpReceiver,
  type OtlpReceiver,
  type ReceivedSpan,
} from '../helpers/otlp-receiver.js';
import { eventually } from '../helpers/pipeline.js';
import { killAll, spawnMiniPush, type MiniPushProcess } from '../helpers/processes.js';
import { backendConfig, tempDir } from '../helpers/services.js';
import { API_KEY, JWT_SECRET, signUserToken } from '../helpers/stack.js';
import { connect, type TestSocket } from '../helpers/ws-client.js';

const PRODUCER = 4;
const CONSUMER = 5;

/** The span and its ancestors up to the root of its trace, through parentSpanId. */
async function ancestry(spans: ReceivedSpan[], leaf: ReceivedSpan): Promise<ReceivedSpan[]> {
  // Processes export on their own schedules: wait until the chain from the leaf reaches a root,
  // not merely until some root of the trace has arrived.
  const chainOf = () => {
    const byId = new Map(spans.filter((s) => s.traceId === leaf.traceId).map((s) => [s.spanId, s]));
    const chain: ReceivedSpan[] = [];
    for (let s: ReceivedSpan | undefined = leaf; s;) {
      chain.push(s);
      s = s.parentSpanId ? byId.get(s.parentSpanId) : undefined;
    }
    return chain;
  };
  return eventually(chainOf, (chain) => chain.at(-1)?.parentSpanId === null);
}

async function findSpan(spans: ReceivedSpan[], name: string, key: string, value: unknown) {
  const found = await eventually(
    () => spans.find((s) => s.name === name && s.attributes[key] === value),
    (s) => s !== undefined,
  );
  return found!;
}

/**
 * An API+hub process and a projector process on Kafka and MariaDB, exporting OTLP/JSON to a
 * receiver of the test's own: one event's trace must run from the REST publish through both
 * Kafka hops to the nudge.
 */
describe('tracing across processes (Kafka + MariaDB)', () => {
  let receiver: OtlpReceiver;
  let api: MiniPushProcess;
  let projector: MiniPushProcess;
  let cleanup: (() => Promise<void>) | undefined;
  let commandsTopic: string;
  const sockets: TestSocket[] = [];

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    const made = await backendConfig('kafka+mysql', {
      apiKeys: [API_KEY],
      jwtSecret: JWT_SECRET,
      nudgeWindowMs: 20,
      grpcPort: -1,
    });
    cleanup = () => made.cleanup();
    const c = made.config;
    const backend = openBackend(c, createLogger('warn'));
    await prepareBackend(c, backend, createLogger('warn'));
    commandsTopic = backend.topics.commands;
    await backend.close();
    const env = {
      ...deploymentEnv(c, {
        nudgeWindowMs: c.nudgeWindowMs,
        grpcPort: -1,
        httpPort: 0,
      }),
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '100',
    };
    [projector, api] = await Promise.all([
      spawnMiniPush({
        ...env,
        MINIPUSH_ROLES: 'projector',
        MINIPUSH_LOG_LEVEL: 'debug',
        OTEL_SERVICE_NAME: 'minipush-projector',
      }),
      spawnMiniPush({ ...env, MINIPUSH_ROLES: 'api,hub', OTEL_SERVICE_NAME: 'minipush-api' }),
    ]);
  });

  afterAll(async () => {
    await Promise.all(sockets.map((s) => s.close().catch(() => undefined)));
    await killAll();
    await receiver?.close();
    await cleanup?.();
  });

  it('should follow one event from the REST publish to the nudge in one trace', async () => {
    const uid = 300_000 + Math.floor(Math.random() * 100_000);
    const marker = `body-${randomBytes(6).toString('hex')}`;
    const token = await signUserToken(uid);
    const socket = await connect(`${api.url!.replace('http', 'ws')}/v1/ws`, { token });
    sockets.push(socket);
    await socket.next((m) => m.type === 'hello');

    const res = await fetch(`${api.url}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ to: [uid], body: { marker } }),
    });
    expect(res.status).toBe(202);
    const { id, position } = (await res.json()) as { id: string; position: string };
    const [partition, offset] = position.split(':').map(Number);
    expect(await socket.next((m) => m.type === 'head', 20_000)).toMatchObject({ headSeq: 1 });

    const spans = receiver.spans;
    const publish = await findSpan(spans, SPAN.publish, 'minipush.event.id', id);
    const nudge = await findSpan(spans, SPAN.nudge, 'minipush.uid', uid);
    expect(nudge.traceId).toBe(publish.traceId);

    // Walk from the nudge up to the trace's root through parentSpanId.
    const chain = await ancestry(spans, nudge);
    const names = chain.map((s) => s.name);
    expect(names.slice(0, 5)).toEqual([
      SPAN.nudge,
      SPAN.notify,
      SPAN.project,
      `send ${commandsTopic}`,
      SPAN.publish,
    ]);
    // Nothing is missing between the nudge and the root: the HTTP server span of the publish.
    const root = chain[chain.length - 1]!;
    expect(root.parentSpanId).toBeNull();
    expect(root.name).toBe('POST /v1/events');
    expect(root.kind).toBe(2);

    const [nudgeSpan, notify, project, send, publishSpan] = chain;
    expect(publishSpan).toBe(publish);
    expect(nudgeSpan).toMatchObject({
      service: 'minipush-api',
      kind: CONSUMER,
      attributes: { 'minipush.uid': uid, 'minipush.head_seq': 1, 'minipush.sessions': 1 },
    });
    expect(notify).toMatchObject({
      service: 'minipush-projector',
      kind: PRODUCER,
      attributes: { 'minipush.uid': uid, 'minipush.uid_count': 1 },
    });
    expect(project).toMatchObject({
      service: 'minipush-projector',
      kind: CONSUMER,
      attributes: {
        'messaging.destination.name': commandsTopic,
        'messaging.destination.partition.id': String(partition),
        'messaging.kafka.offset': offset,
        'minipush.command.type': 'publish',
        'minipush.uid_count': 1,
      },
    });
    expect(send!.service).toBe('minipush-api');
    expect(publish).toMatchObject({
      service: 'minipush-api',
      kind: PRODUCER,
      attributes: { 'minipush.command.type': 'publish', 'minipush.uid_count': 1 },
    });

    // The batch span that applied the record links to it and parents the batch's SQL.
    const batch = spans.find(
      (s) =>
        s.name === SPAN.projectBatch &&
        s.links.some((l) => l.traceId === publish.traceId && l.spanId === send!.spanId),
    );
    expect(batch).toMatchObject({
      service: 'minipush-projector',
      attributes: { 'messaging.destination.partition.id': String(partition) },
    });
    expect(project!.links).toContainEqual({ traceId: batch!.traceId, spanId: batch!.spanId });
    const sql = await eventually(
      () => spans.filter((s) => s.parentSpanId === batch!.spanId && s.scope.includes('mysql2')),
      (found) => found.length > 0,
    );
    expect(sql.map((s) => s.traceId)).toEqual(sql.map(() => batch!.traceId));

    // The projector's log line for that batch carries the batch span's ids.
    const line = await eventually(
      () =>
        projector.logs.find(
          (l) =>
            l.msg === 'batch applied' && l.partition === partition && l.span_id === batch!.spanId,
        ),
      (l) => l !== undefined,
    );
    expect(line!.trace_id).toBe(batch!.traceId);

    // Neither the event body nor the user's token appears in any span.
    const exported = JSON.stringify(spans);
    expect(exported).not.toContain(marker);
    expect(exported).not.toContain(token);
    // Only traces are exported: metrics and logs stay with Prometheus and stdout.
    expect(receiver.requests.every((r) => r.startsWith('POST /v1/traces '))).toBe(true);
  });
});

/** The embedded default: headers kept in the SQLite log, head changes passed in process. */
describe('tracing on the embedded default', () => {
  let receiver: OtlpReceiver;
  let server: MiniPushProcess;
  const dataDir = tempDir();

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    server = await spawnMiniPush({
      MINIPUSH_DATA_DIR: dataDir,
      MINIPUSH_API_KEYS: API_KEY,
      MINIPUSH_JWT_SECRET: JWT_SECRET,
      MINIPUSH_HTTP_PORT: '0',
      MINIPUSH_GRPC_PORT: '-1',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '100',
    });
  });

  afterAll(async () => {
    await killAll();
    await receiver?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('should chain publish, projection, notification and nudge in one trace', async () => {
    const uid = 77;
    const socket = await connect(`${server.url!.replace('http', 'ws')}/v1/ws`, {
      token: await signUserToken(uid),
    });
    try {
      await socket.next((m) => m.type === 'hello');
      const res = await fetch(`${server.url}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ to: [uid], body: { hello: 'embedded' } }),
      });
      expect(res.status).toBe(202);
      const { id, position } = (await res.json()) as { id: string; position: string };
      await socket.next((m) => m.type === 'head');

      const publish = await findSpan(receiver.spans, SPAN.publish, 'minipush.event.id', id);
      const nudge = await findSpan(receiver.spans, SPAN.nudge, 'minipush.uid', uid);
      const chain = await ancestry(receiver.spans, nudge);
      expect(chain.map((s) => s.name)).toEqual([
        SPAN.nudge,
        SPAN.notify,
        SPAN.project,
        SPAN.publish,
        'handler - eventsRoutes',
        'request',
        'POST /v1/events',
      ]);
      expect(chain[3]).toBe(publish);
      expect(chain[2]!.attributes).toMatchObject({
        'messaging.system': 'minipush.embedded',
        'messaging.destination.partition.id': position.split(':')[0],
        'messaging.kafka.offset': Number(position.split(':')[1]),
      });
      expect(new Set(chain.map((s) => s.service))).toEqual(new Set(['minipush']));
    } finally {
      await socket.close();
    }
  });
});
