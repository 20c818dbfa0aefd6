import http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPackageDefinition } from '../../src/transports/grpc/server.js';
import { API_KEY, signUserToken, startStack, type Stack } from '../helpers/stack.js';
import { connect, type TestSocket } from '../helpers/ws-client.js';

function noneToken(uid: number): string {
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ sub: String(uid), exp: Math.floor(Date.now() / 1000) + 600 })}.`;
}

const SQLISH = [
  "1' OR '1'='1",
  '1; DROP TABLE events; --',
  "x');DELETE/**/FROM/**/user_events;--",
  '1 UNION SELECT * FROM user_states',
  '%27%20OR%201%3D1',
];

describe('security: no one let in, nothing injected (Kafka + MariaDB)', () => {
  let stack: Stack;
  let wsUrl: string;
  const sockets: TestSocket[] = [];

  beforeAll(async () => {
    stack = await startStack('kafka+mysql', { sessionQuota: 3, maxConnectionsPerIp: 50 }, [
      'api',
      'hub',
      'projector',
    ]);
    wsUrl = `${stack.url.replace('http', 'ws')}/v1/ws`;
    for (let i = 0; i < 3; i++) {
      const res = await stack.call('POST', '/v1/events?wait=true', {
        body: { id: `base-${i}`, to: [1, 2], body: { i } },
      });
      expect(res.status).toBe(200);
    }
  });

  afterAll(async () => {
    await Promise.all(sockets.map((s) => s.close().catch(() => undefined)));
    await stack?.close();
  });

  async function tablesIntact() {
    const { db } = stack.runtime.backend;
    expect(
      await db('events')
        .whereIn('event_id', ['base-0', 'base-1', 'base-2'])
        .countDistinct({ n: 'event_id' }),
    ).toEqual([{ n: 3 }]);
    expect((await stack.call('GET', '/v1/users/1/stats')).body.headSeq).toBeGreaterThanOrEqual(3);
  }

  it('should treat SQL-looking strings in every REST parameter as data or reject them', async () => {
    for (const bad of SQLISH) {
      const encoded = encodeURIComponent(bad);
      for (const path of [
        `/v1/users/${encoded}/events`,
        `/v1/users/${encoded}/stats`,
        `/v1/users/1/events?after=${encoded}`,
        `/v1/users/1/events?limit=${encoded}`,
        `/v1/users/1/events?from=${encoded}&to=3`,
        `/v1/users/1/events?from=1&to=3&order=${encoded}`,
        `/v1/users/1/read-states?upTo=${encoded}`,
        `/v1/users/1/read-states?format=${encoded}`,
      ]) {
        const res = await stack.call('GET', path);
        expect(res.status, path).toBe(400);
        expect(res.body.error.code, path).toMatch(/^MINIPUSH_/);
      }
      const marked = await stack.call('POST', '/v1/users/1/read', { body: { seqs: [bad] } });
      expect(marked.status).toBe(400);
      const published = await stack.call('POST', '/v1/events', { body: { to: [bad], body: 1 } });
      expect(published.status).toBe(400);
    }
    // As an id (when it has no spaces) and in a body, it is stored and read back verbatim.
    const id = "x');DELETE/**/FROM/**/user_events;--";
    const res = await stack.call('POST', '/v1/events?wait=true', {
      body: { id, to: [9], body: { text: SQLISH.join(' | ') } },
    });
    expect(res.body).toEqual({ id, seqs: { '9': 1 } });
    const page = await stack.call('GET', '/v1/users/9/events');
    expect(page.body.events[0].body).toEqual({ text: SQLISH.join(' | ') });
    await tablesIntact();
  });

  it('should refuse oversize headers and bodies without harm', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const url = new URL(`${stack.url}/v1/users/1/stats`);
      const req = http.request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          headers: { authorization: `Bearer ${API_KEY}`, 'x-junk': 'j'.repeat(64 * 1024) },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(431);
    const huge = await stack.call('POST', '/v1/events', {
      body: { to: [1], body: 'z'.repeat(2 * 1024 * 1024) },
    });
    expect(huge.status).toBe(413);
    expect((await stack.call('GET', '/healthz', { auth: null })).status).toBe(200);
  });

  it('should refuse alg:none and forged tokens on gRPC too', async () => {
    const loaded = grpc.loadPackageDefinition(loadPackageDefinition()) as any;
    const client = new loaded.minipush.v1.QueryService(
      `127.0.0.1:${stack.runtime.grpcPort}`,
      grpc.credentials.createInsecure(),
    );
    try {
      for (const token of [
        noneToken(1),
        await signUserToken(1, { secret: 'not-the-secret-not-the-secret-123' }),
      ]) {
        const md = new grpc.Metadata();
        md.set('authorization', `Bearer ${token}`);
        const code = await new Promise<number>((resolve) =>
          client.GetStats({ uid: 1 }, md, (err: grpc.ServiceError | null) =>
            resolve(err?.code ?? 0),
          ),
        );
        expect(code).toBe(grpc.status.UNAUTHENTICATED);
      }
    } finally {
      client.close();
    }
  });

  it('should keep a WebSocket session on its own uid whatever a request says', async () => {
    const mine = await connect(wsUrl, { token: await signUserToken(5) });
    sockets.push(mine);
    await mine.next((m) => m.type === 'hello');
    const answer = await mine.request('diff', { uid: 1, after: 0 });
    expect(answer.headSeq).toBe(0);
    expect(answer.events).toEqual([]);
    const stats = await mine.request('stats', { uid: 1 });
    expect(stats.headSeq).toBe(0);
    const alg = await connect(wsUrl, { token: noneToken(1) });
    expect(await alg.next((m) => m.type === 'error')).toMatchObject({
      code: 'MINIPUSH_UNAUTHENTICATED',
    });
    expect((await alg.closed).code).toBe(4401);
  });

  it('should hold a flood of sessions for one user to the quota, keeping the newest', async () => {
    const token = await signUserToken(6);
    const flood = await Promise.all(Array.from({ length: 20 }, () => connect(wsUrl, { token })));
    sockets.push(...flood);
    await Promise.all(flood.map((s) => s.next((m) => m.type === 'hello')));
    await expect
      .poll(() => flood.filter((s) => s.ws.readyState === WebSocket.OPEN).length, {
        timeout: 20_000,
      })
      .toBe(3);
    const kicked = flood.filter((s) => s.ws.readyState !== WebSocket.OPEN);
    for (const s of kicked) expect((await s.closed).code).toBe(4500);
  });
});

describe('security: per-IP connection limit (embedded)', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack('embedded', { maxConnectionsPerIp: 10, sessionQuota: 100 }, [
      'api',
      'hub',
      'projector',
    ]);
  });

  afterAll(async () => {
    await stack?.close();
  });

  it('should refuse a concurrent connection flood from one address beyond the limit', async () => {
    const url = `${stack.url.replace('http', 'ws')}/v1/ws`;
    const token = await signUserToken(11);
    const results = await Promise.allSettled(
      Array.from({ length: 25 }, () => connect(url, { token })),
    );
    const accepted = results.filter(
      (r): r is PromiseFulfilledResult<TestSocket> => r.status === 'fulfilled',
    );
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(accepted.length).toBeLessThanOrEqual(10);
    expect(refused.length).toBeGreaterThanOrEqual(15);
    for (const r of refused) expect(r.reason.status).toBe(429);
    for (const r of accepted) await r.value.next((m) => m.type === 'hello');
    await Promise.all(accepted.map((r) => r.value.close()));
    // Closed connections give their slots back.
    await new Promise((r) => setTimeout(r, 100));
    const again = await connect(url, { token });
    await again.next((m) => m.type === 'hello');
    await again.close();
  });
});
