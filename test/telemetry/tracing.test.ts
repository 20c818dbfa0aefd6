import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SPAN } from '../../src/telemetry/spans.js';
import {
  startOtlpReceiver,
  type OtlpReceiver,
  type ReceivedSpan,
} from '../helpers/otlp-receiver.js';
import { eventually } from '../helpers/pipeline.js';
import { killAll, spawnMiniPush, type MiniPushProcess } from '../helpers/processes.js';
import { tempDir } from '../helpers/services.js';
import { API_KEY, JWT_SECRET, signUserToken } from '../helpers/stack.js';
import { connect } from '../helpers/ws-client.js';

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
 * Span shapes, fast: the embedded default (headers kept in the SQLite log, head changes passed
 * in process) exporting OTLP/JSON to a receiver of the test's own. The end-to-end test across
 * processes, Kafka and MariaDB is against a real Jaeger: jaeger.test.ts.
 */
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
    const marker = `body-${randomBytes(6).toString('hex')}`;
    const token = await signUserToken(uid);
    const socket = await connect(`${server.url!.replace('http', 'ws')}/v1/ws`, { token });
    try {
      await socket.next((m) => m.type === 'hello');
      const res = await fetch(`${server.url}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ to: [uid], body: { marker } }),
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
      // Neither the event body nor the user's token appears in any span.
      const exported = JSON.stringify(receiver.spans);
      expect(exported).not.toContain(marker);
      expect(exported).not.toContain(token);
      // Only traces are exported: metrics and logs stay with Prometheus and stdout.
      expect(receiver.requests.every((r) => r.startsWith('POST /v1/traces '))).toBe(true);
    } finally {
      await socket.close();
    }
  });
});
