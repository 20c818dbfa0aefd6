import { randomBytes, randomInt } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openBackend, prepareBackend } from '../../src/backend.js';
import { configEnv } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { SPAN } from '../../src/telemetry/spans.js';
import {
  jaegerClient,
  outlineAll,
  renderTree,
  waitForTrace,
  waitFor,
  type Jaeger,
  type JaegerSpan,
  type JaegerTrace,
  type TraceSearch,
} from '../helpers/jaeger.js';
import { codeBlocks, readDoc } from '../helpers/markdown.js';
import { killAll, spawnMiniPush, type MiniPushProcess } from '../helpers/processes.js';
import { backendConfig, kafkaBrokers } from '../helpers/services.js';
import { API_KEY, JWT_SECRET, signUserToken } from '../helpers/stack.js';
import { connect, type TestSocket } from '../helpers/ws-client.js';

const API = 'minipush-api';
const PROJECTOR = 'minipush-projector';
const HUB = 'minipush-hub';

/** The span and its ancestors up to the root of its trace, through CHILD_OF references. */
function ancestry(trace: JaegerTrace, leaf: JaegerSpan): JaegerSpan[] {
  const byId = new Map(trace.spans.map((s) => [s.spanId, s]));
  const chain: JaegerSpan[] = [];
  for (let s: JaegerSpan | undefined = leaf; s;) {
    chain.push(s);
    s = s.parent ? byId.get(s.parent.spanId) : undefined;
  }
  return chain;
}

/** The lines of the trace tree in docs/observability.md whose first line starts so. */
function documentedTree(firstLine: string): string[] {
  const tree = codeBlocks(readDoc('observability.md'), 'text').find((b) => b.startsWith(firstLine));
  if (!tree) throw new Error(`docs/observability.md shows no trace tree starting ${firstLine}`);
  return tree.trimEnd().split('\n');
}

/** The lines of `documented` that `actual` does not hold in that order. */
function notInOrder(actual: readonly string[], documented: readonly string[]): string[] {
  const missing: string[] = [];
  let at = 0;
  for (const line of documented) {
    const found = actual.indexOf(line, at);
    if (found < 0) missing.push(line);
    else at = found + 1;
  }
  return missing;
}

/** A random W3C trace context, as a business server's own tracer would send it. */
function ownTraceContext(): { traceId: string; spanId: string; traceparent: string } {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-01` };
}

/**
 * The end-to-end tracing test against a real Jaeger, as an operator runs it: an API process, a
 * projector and a hub on Kafka and MariaDB, each exporting OTLP with its own service name (the
 * API and the hub over OTLP/HTTP, the projector over OTLP/gRPC); the test then asks Jaeger's
 * query API what its UI would show.
 */
describe('tracing in Jaeger (Kafka + MariaDB; api, projector and hub processes)', () => {
  let jaeger: Jaeger;
  let api: MiniPushProcess;
  let projector: MiniPushProcess;
  let hub: MiniPushProcess;
  let cleanup: (() => Promise<void>) | undefined;
  let topicPrefix: string;
  let commandsTopic: string;
  let headsTopic: string;
  let deadLetterTopic: string;
  let partitions: number;
  const sockets: TestSocket[] = [];

  // The event every test below looks at, published once.
  const uid = randomInt(1, 2 ** 32 - 1);
  const marker = `body-${randomBytes(6).toString('hex')}`;
  let token: string;
  let event: { id: string; partition: number; offset: number };

  beforeAll(async () => {
    jaeger = jaegerClient(inject('jaegerQuery'));
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
    topicPrefix = c.topicPrefix;
    commandsTopic = backend.topics.commands;
    headsTopic = backend.topics.heads;
    deadLetterTopic = backend.topics.deadLetters;
    partitions = c.partitions;
    await backend.close();
    const env = {
      ...configEnv({
        kafkaBrokers: c.kafkaBrokers,
        mysqlUrl: c.mysqlUrl,
        topicPrefix: c.topicPrefix,
        partitions: c.partitions,
        apiKeys: c.apiKeys,
        jwtSecret: c.jwtSecret,
        nudgeWindowMs: c.nudgeWindowMs,
        grpcPort: -1,
        httpPort: 0,
      }),
      // Export soon after a span ends: the test waits for Jaeger to show them.
      OTEL_BSP_SCHEDULE_DELAY: '200',
    };
    const otlpHttp = { OTEL_EXPORTER_OTLP_ENDPOINT: inject('otlpEndpoint') };
    [projector, api, hub] = await Promise.all([
      spawnMiniPush({
        ...env,
        MINIPUSH_ROLES: 'projector',
        MINIPUSH_LOG_LEVEL: 'debug',
        OTEL_SERVICE_NAME: PROJECTOR,
        OTEL_EXPORTER_OTLP_ENDPOINT: inject('otlpGrpcEndpoint'),
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      }),
      spawnMiniPush({ ...env, ...otlpHttp, MINIPUSH_ROLES: 'api', OTEL_SERVICE_NAME: API }),
      spawnMiniPush({ ...env, ...otlpHttp, MINIPUSH_ROLES: 'hub', OTEL_SERVICE_NAME: HUB }),
    ]);

    token = await signUserToken(uid);
    const socket = await connect(`${hub.url!.replace('http', 'ws')}/v1/ws`, { token });
    sockets.push(socket);
    await socket.next((m) => m.type === 'hello');
    const res = await fetch(`${api.url}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ to: [uid], body: { marker } }),
    });
    expect(res.status).toBe(202);
    const { id, position } = (await res.json()) as { id: string; position: string };
    const [partition, offset] = position.split(':').map(Number) as [number, number];
    event = { id, partition, offset };
    expect(await socket.next((m) => m.type === 'head', 30_000)).toMatchObject({ headSeq: 1 });
  });

  afterAll(async () => {
    await Promise.all(sockets.map((s) => s.close().catch(() => undefined)));
    await killAll();
    await cleanup?.();
  });

  /** The event's trace once it holds every hop from the REST publish to the hub's nudge. */
  async function eventTrace(): Promise<{ trace: JaegerTrace; chain: JaegerSpan[] }> {
    const [found] = await waitFor(
      'the trace of the publish span with the event id',
      () => jaeger.search({ service: API, tags: { 'minipush.event.id': event.id } }),
      (traces) => traces.length > 0,
      { show: outlineAll },
    );
    let chain: JaegerSpan[] = [];
    const trace = await waitForTrace(
      jaeger,
      'the nudge, its ancestors up to the root, in the publish trace',
      found!.traceId,
      (t) => {
        const nudge = t.spans.find((s) => s.name === SPAN.nudge && s.tags['minipush.uid'] === uid);
        if (!nudge) return false;
        chain = ancestry(t, nudge);
        return chain.at(-1)!.parent === null;
      },
    );
    return { trace, chain };
  }

  it('should show one trace from the REST publish through both Kafka hops to the nudge', async () => {
    const { trace, chain } = await eventTrace();
    const hops = chain.map((s) => [s.service, s.kind, s.name]);
    // Leaf to root: the hub's nudge, the projector's heads produce and consume of the record, the
    // API's Kafka produce and publish, down to the HTTP server span of the REST call.
    expect(hops.slice(0, 5)).toEqual([
      [HUB, 'consumer', SPAN.nudge],
      [PROJECTOR, 'producer', SPAN.notify],
      [PROJECTOR, 'consumer', SPAN.project],
      [API, 'producer', `send ${commandsTopic}`],
      [API, 'producer', SPAN.publish],
    ]);
    expect(hops.at(-1)).toEqual([API, 'server', 'POST /v1/events']);
    for (const span of chain) expect(span.traceId).toBe(trace.traceId);
    for (const span of chain.slice(0, -1)) expect(span.parent!.traceId).toBe(trace.traceId);

    const [nudge, notify, project, send, publish] = chain as [
      JaegerSpan,
      JaegerSpan,
      JaegerSpan,
      JaegerSpan,
      JaegerSpan,
    ];
    expect(nudge.tags).toMatchObject({
      'minipush.uid': uid,
      'minipush.head_seq': 1,
      'minipush.sessions': 1,
    });
    expect(notify.tags).toMatchObject({ 'minipush.uid': uid, 'minipush.head_seq': 1 });
    expect(project.tags).toMatchObject({
      'messaging.destination.name': commandsTopic,
      'messaging.destination.partition.id': String(event.partition),
      'messaging.kafka.offset': event.offset,
      'minipush.command.type': 'publish',
      'minipush.uid_count': 1,
    });
    expect(publish.tags).toMatchObject({
      'minipush.command.type': 'publish',
      'minipush.event.id': event.id,
      'minipush.uid_count': 1,
      'messaging.destination.partition.id': String(event.partition),
      'messaging.kafka.offset': event.offset,
    });
    expect(send.tags).toMatchObject({ 'messaging.destination.name': commandsTopic });
    for (const span of chain) expect(span.tags.error).toBeUndefined();

    // The projector's transaction, in the trace of the Kafka poll that fetched the record: the
    // batch span links to the Kafka produce (and the record's span links back to it); its SQL,
    // the whole transaction in one query, and its one produce to the heads topic run beneath it.
    const link = project.follows[0];
    expect(link).toBeDefined();
    const childrenOf = (t: JaegerTrace, spanId: string) =>
      t.spans.filter((s) => s.parent?.spanId === spanId).sort((a, b) => a.startTime - b.startTime);
    const isTransaction = (s: JaegerTrace['spans'][number]) =>
      String(s.tags['db.query.text']).startsWith('START TRANSACTION;');
    const batchTrace = await waitForTrace(
      jaeger,
      'the projector batch, its transaction and its heads produce',
      link!.traceId,
      (t) => {
        const children = childrenOf(t, link!.spanId);
        return (
          children.some(isTransaction) && children.some((s) => s.name === `send ${headsTopic}`)
        );
      },
    );
    const batch = batchTrace.spans.find((s) => s.spanId === link!.spanId)!;
    expect(batch).toMatchObject({ name: SPAN.projectBatch, service: PROJECTOR, kind: 'consumer' });
    expect(batch.tags).toMatchObject({
      'messaging.destination.partition.id': String(event.partition),
      'minipush.offset.first': event.offset,
    });
    expect(batch.follows).toContainEqual({ traceId: trace.traceId, spanId: send.spanId });
    const poll = batchTrace.spans.find((s) => s.spanId === batch.parent?.spanId);
    expect(poll).toMatchObject({ name: `poll ${commandsTopic}`, service: PROJECTOR, parent: null });
    const work = childrenOf(batchTrace, batch.spanId);
    const sql = work.filter((s) => s.tags['db.system.name'] === 'mysql');
    const statements = sql.map((s) => String(s.tags['db.query.text']));
    // On MySQL a slice's transaction travels as one multi-statement query (statements.ts): the
    // offsets' compare-and-set first, the rows, then the COMMIT.
    const transaction = statements.filter((q) => q.startsWith('START TRANSACTION;'));
    expect(transaction).toHaveLength(1);
    const parts = transaction[0]!.split(';\n');
    expect(parts[1]).toMatch(/^update `projector_offsets`/);
    expect(parts.some((q) => q.startsWith('insert into `user_events`'))).toBe(true);
    expect(parts.at(-1)).toBe('COMMIT');
    // Statements are recorded with their placeholders, never the values.
    expect(statements.join('\n')).not.toContain(String(uid));
    // One span per record sent: the partition's changes (the user's), then its position.
    const heads = work.filter((s) => s.name === `send ${headsTopic}`);
    expect(heads.map((s) => s.tags['messaging.kafka.message.key']).sort()).toEqual(
      [`minipush-changes-${event.partition}`, `minipush-position-${event.partition}`].sort(),
    );

    // docs/observability.md shows both trees from a real run: the event's exactly, the batch's
    // without the spans that vary from batch to batch (offset loads, connection set-up).
    const replace: Array<[string, string]> = [[topicPrefix, '<prefix>']];
    expect(renderTree(trace, { linked: [batchTrace], replace })).toBe(
      documentedTree('POST /v1/events').join('\n'),
    );
    const batchLines = renderTree(batchTrace, { linked: [trace], replace }).split('\n');
    expect(
      notInOrder(batchLines, documentedTree('poll <prefix>.commands')),
      batchLines.join('\n'),
    ).toEqual([]);

    // The projector's log line for that batch names the batch span: logs and traces join.
    const line = projector.logs.find(
      (l) =>
        l.msg === 'batch applied' && l.partition === event.partition && l.span_id === batch.spanId,
    );
    expect(line?.trace_id).toBe(batch.traceId);

    // Neither the event body nor the user's token is in any span Jaeger holds.
    const shown = JSON.stringify([trace, batchTrace]);
    expect(shown).not.toContain(marker);
    expect(shown).not.toContain(token);
  }, 120_000);

  it('should find the trace by the attributes an operator searches for', async () => {
    const { trace } = await eventTrace();
    expect(await jaeger.services()).toEqual(expect.arrayContaining([API, PROJECTOR, HUB]));
    const position = {
      'messaging.destination.name': commandsTopic,
      'messaging.destination.partition.id': String(event.partition),
      'messaging.kafka.offset': String(event.offset),
    };
    const searches: TraceSearch[] = [
      { service: API, operation: SPAN.publish, tags: { 'minipush.event.id': event.id } },
      { service: API, operation: SPAN.publish, tags: position },
      { service: PROJECTOR, operation: SPAN.project, tags: position },
      { service: PROJECTOR, operation: SPAN.notify, tags: { 'minipush.uid': String(uid) } },
      { service: HUB, operation: SPAN.nudge, tags: { 'minipush.uid': String(uid) } },
    ];
    for (const search of searches) {
      const found = await jaeger.search(search);
      expect(
        found.map((t) => t.traceId),
        JSON.stringify(search),
      ).toEqual([trace.traceId]);
    }
    // The searches filter: another uid or offset finds no trace of this event.
    const others: TraceSearch[] = [
      { service: HUB, tags: { 'minipush.uid': String(uid === 1 ? 2 : uid - 1) } },
      {
        service: PROJECTOR,
        tags: { ...position, 'messaging.kafka.offset': String(event.offset + 1) },
      },
    ];
    for (const search of others) {
      const found = await jaeger.search(search);
      expect(found.map((t) => t.traceId)).not.toContain(trace.traceId);
    }
  }, 120_000);

  it('should show a dead-lettered record as an error span with its reason, in the producer’s trace', async () => {
    // A business server producing junk straight to the commands topic, with its own trace.
    const own = ownTraceContext();
    const kafka = new Kafka({
      clientId: 'jaeger-test',
      brokers: kafkaBrokers(),
      logLevel: logLevel.NOTHING,
    });
    const producer = kafka.producer();
    await producer.connect();
    let offset: number;
    const partition = randomInt(0, partitions);
    try {
      const [meta] = await producer.send({
        topic: commandsTopic,
        messages: [
          {
            partition,
            key: String(uid),
            value: JSON.stringify({ v: 1, type: 'publish', id: 'has space', to: [uid], body: 1 }),
            headers: { traceparent: own.traceparent },
          },
        ],
      });
      offset = Number(meta!.baseOffset);
    } finally {
      await producer.disconnect();
    }

    const [found] = await waitFor(
      'an error span of the projector at the junk record’s offset',
      () =>
        jaeger.search({
          service: PROJECTOR,
          operation: SPAN.project,
          // Jaeger 1.76's in-memory store finds nothing for `error=true` (it compares the
          // query's string with a boolean); `error.type` is a plain attribute.
          tags: {
            'error.type': 'dead_letter',
            'messaging.destination.name': commandsTopic,
            'messaging.destination.partition.id': String(partition),
            'messaging.kafka.offset': String(offset),
          },
        }),
      (traces) => traces.length > 0,
      { show: outlineAll },
    );
    expect(found!.traceId).toBe(own.traceId);
    const span = found!.spans.find((s) => s.name === SPAN.project)!;
    expect(span.parent).toEqual({ traceId: own.traceId, spanId: own.spanId });
    expect(span.tags).toMatchObject({
      error: true,
      'otel.status_code': 'ERROR',
      'otel.status_description': 'id may hold only printable ASCII characters without spaces',
      'error.type': 'dead_letter',
      'minipush.dlq.field': 'id',
      'minipush.dlq.reason': 'id may hold only printable ASCII characters without spaces',
    });
    // The batch it links to sent it to the dead-letter topic; nothing was projected for it.
    const batch = span.follows[0]!;
    await waitForTrace(jaeger, 'the dead-letter produce beneath the batch', batch.traceId, (t) =>
      t.spans.some(
        (s) => s.parent?.spanId === batch.spanId && s.name === `send ${deadLetterTopic}`,
      ),
    );
    const whole = await jaeger.trace(own.traceId);
    expect(whole!.spans.map((s) => s.name)).toEqual([SPAN.project]);
  }, 120_000);

  it('should show a refused request as an error span with the code the client got', async () => {
    const since = new Date();
    const refusals = [
      // A schema error: Fastify's own error, answered with a catalogue code.
      { auth: `Bearer ${API_KEY}`, to: [-1], status: 400, code: 'MINIPUSH_INVALID_UID' },
      { auth: 'Bearer not-a-key', to: [uid], status: 401, code: 'MINIPUSH_UNAUTHENTICATED' },
    ];
    for (const refusal of refusals) {
      // The caller's own trace context, so the test knows which trace to open.
      const own = ownTraceContext();
      const res = await fetch(`${api.url}/v1/events`, {
        method: 'POST',
        headers: {
          authorization: refusal.auth,
          'content-type': 'application/json',
          traceparent: own.traceparent,
        },
        body: JSON.stringify({ to: refusal.to, body: { marker } }),
      });
      expect(res.status).toBe(refusal.status);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(refusal.code);

      const traces = await waitFor(
        `the API's error span with error.type ${refusal.code}`,
        () =>
          jaeger.search({
            service: API,
            tags: { 'error.type': refusal.code, 'http.route': '/v1/events' },
            since,
            limit: 1000,
          }),
        (found) => found.some((t) => t.traceId === own.traceId),
        { show: outlineAll },
      );
      const trace = traces.find((t) => t.traceId === own.traceId)!;
      const server = trace.spans.find((s) => s.kind === 'server')!;
      expect(server).toMatchObject({
        name: 'POST /v1/events',
        parent: { traceId: own.traceId, spanId: own.spanId },
      });
      expect(server.tags['http.response.status_code']).toBe(refusal.status);
      const failed = trace.spans.filter((s) => s.tags['error.type'] === refusal.code);
      expect(failed).toHaveLength(1);
      expect(failed[0]!.tags).toMatchObject({ error: true, 'otel.status_code': 'ERROR' });
      expect(failed[0]!.logs.map((l) => l.event)).toContain('exception');
      // Refused before the write log: nothing was published.
      expect(trace.spans.map((s) => s.name)).not.toContain(SPAN.publish);
    }
  }, 120_000);
});
