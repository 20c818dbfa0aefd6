import http from 'node:http';
import type net from 'node:net';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConnectionState,
  DisconnectCode,
  MiniPushClient,
  type DisconnectInfo,
  type FeedEvent,
  type MiniPushClientOptions,
} from '../../src/client/index.js';
import { httpBaseOf } from '../../src/client/client.js';
import { eventually } from '../helpers/pipeline.js';
import { parsePrometheus, valueOf } from '../helpers/prometheus.js';
import type { Backend } from '../helpers/services.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { signUserToken, startStack, type Stack } from '../helpers/stack.js';
import { connect, type TestSocket } from '../helpers/ws-client.js';

let nextUid = 250_000;
const freshUid = () => nextUid++;

/** An HTTP proxy that forwards requests (SSE and REST stream through) but refuses upgrades. */
async function noUpgradeProxy(target: string): Promise<{ url: string; close(): Promise<void> }> {
  const upstream = new URL(target);
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    const forward = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    res.on('close', () => forward.destroy());
    req.pipe(forward);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  // What a proxy that does not pass WebSockets on does: answer the upgrade with an error.
  server.on('upgrade', (_req, socket) => {
    socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function observe(client: MiniPushClient) {
  const seen = {
    events: [] as FeedEvent[],
    heads: [] as number[],
    disconnects: [] as DisconnectInfo[],
    errors: [] as Error[],
  };
  client.on('event', (e) => seen.events.push(e));
  client.on('head', (h) => seen.heads.push(h.headSeq));
  client.on('disconnect', (d) => seen.disconnects.push(d));
  client.on('error', (e) => seen.errors.push(e));
  return seen;
}

describe('httpBaseOf', () => {
  it("should make a hub's WebSocket URL its HTTP base", () => {
    expect(httpBaseOf('wss://push.example.com/v1/ws')).toBe('https://push.example.com');
    expect(httpBaseOf('ws://127.0.0.1:8080/push/v1/ws?x=1')).toBe('http://127.0.0.1:8080/push');
    expect(httpBaseOf('not a url')).toBeNull();
  });
});

describe.each<Backend>(['embedded', 'kafka+mysql'])('MiniPushClient over SSE on %s', (backend) => {
  let stack: Stack;
  let wsUrl: string;
  const clients: MiniPushClient[] = [];
  const sockets: TestSocket[] = [];

  beforeAll(async () => {
    stack = await startStack(backend, { nudgeWindowMs: 20, sessionQuota: 5 }, [
      'api',
      'hub',
      'projector',
    ]);
    wsUrl = `${stack.url.replace('http', 'ws')}/v1/ws`;
  });

  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await Promise.all(sockets.map((s) => s.close().catch(() => undefined)));
    await stack?.close();
  });

  async function client(uid: number, options: Partial<MiniPushClientOptions> = {}) {
    const token = await signUserToken(uid);
    const c = new MiniPushClient({
      url: wsUrl,
      token,
      WebSocket,
      minReconnectDelayMs: 20,
      maxReconnectDelayMs: 200,
      ...options,
    });
    clients.push(c);
    return c;
  }

  async function publish(to: number[], body: unknown = {}) {
    const res = await stack.call('POST', '/v1/events?wait=true', { body: { to, body } });
    expect(res.status).toBe(200);
  }

  async function metric(name: string, labels: Record<string, string>): Promise<number> {
    const res = await fetch(`${stack.url}/metrics`);
    return valueOf(parsePrometheus(await res.text()), name, labels) ?? 0;
  }

  it('should catch up, follow heads and mark read with transport sse, as over the WebSocket', async () => {
    // Given a user with two events
    const uid = freshUid();
    await publish([uid], 'one');
    await publish([uid], 'two');
    const fresh = await metric('minipush_sse_resumes_total', { result: 'fresh' });
    // When its client connects over SSE
    const c = await client(uid, { transport: 'sse' });
    const seen = observe(c);
    c.connect();
    // Then it is an SSE session that catches up by diff (over REST)
    await eventually(
      () => seen.events.length,
      (n) => n === 2,
    );
    expect(c.transport).toBe('sse');
    expect(c.state).toBe(ConnectionState.Connected);
    expect(await metric('minipush_sse_resumes_total', { result: 'fresh' })).toBe(fresh + 1);
    // And a new event arrives from the head nudge
    await publish([uid], 'three');
    await eventually(
      () => seen.events.length,
      (n) => n === 3,
    );
    expect(seen.events.map((e) => e.body)).toEqual(['one', 'two', 'three']);
    expect(c.unreadCount).toBe(3);
    // And marks go over REST and bring the count down
    expect(await c.markRead([1, 2])).toEqual({ changed: 2 });
    expect(c.unreadCount).toBe(1);
    expect(await c.markAllRead()).toEqual({ changed: 1 });
    expect(c.unreadCount).toBe(0);
    expect(c.list().every((e) => e.read)).toBe(true);
    expect(seen.errors).toEqual([]);
  });

  it('should reconnect after a drop with Last-Event-ID and miss nothing', async () => {
    // Given a client over SSE through a connection the test can cut
    const uid = freshUid();
    const target = new URL(stack.url);
    const proxy: TcpProxy = await startTcpProxy({
      host: target.hostname,
      port: Number(target.port),
    });
    try {
      const c = await client(uid, {
        transport: 'sse',
        httpUrl: `http://127.0.0.1:${proxy.port}`,
      });
      const seen = observe(c);
      c.connect();
      await publish([uid], 1);
      await eventually(
        () => seen.events.length,
        (n) => n === 1,
      );
      const behind = await metric('minipush_sse_resumes_total', { result: 'behind' });
      // When the network drops, events arrive meanwhile, and it comes back
      await proxy.cut();
      await eventually(
        () => seen.disconnects.length,
        (n) => n >= 1,
      );
      await publish([uid], 2);
      await publish([uid], 3);
      await proxy.restore();
      // Then the client resumed (its Last-Event-ID was behind) and caught up in order
      await eventually(
        () => seen.events.length,
        (n) => n === 3,
        20_000,
      );
      expect(seen.events.map((e) => e.seq)).toEqual([1, 2, 3]);
      expect(seen.disconnects[0]).toMatchObject({ code: DisconnectCode.Abnormal, reconnect: true });
      expect(await metric('minipush_sse_resumes_total', { result: 'behind' })).toBe(behind + 1);
      c.disconnect();
    } finally {
      await proxy.close();
    }
  });

  it('should stop for good when a WebSocket of the same user kicks the SSE session off', async () => {
    const uid = freshUid();
    const c = await client(uid, { transport: 'sse' });
    const seen = observe(c);
    c.connect();
    await eventually(
      () => c.state,
      (s) => s === ConnectionState.Connected,
    );
    for (let i = 0; i < 5; i++) {
      const s = await connect(wsUrl, { token: await signUserToken(uid) });
      sockets.push(s);
      await s.next((m) => m.type === 'hello');
    }
    await eventually(
      () => c.state,
      (s) => s === ConnectionState.Disconnected,
    );
    expect(seen.disconnects.at(-1)).toMatchObject({
      code: DisconnectCode.KickedOff,
      reconnect: false,
    });
  });

  it('should stop on a token the server refuses, without getToken', async () => {
    const c = new MiniPushClient({ url: wsUrl, token: 'not-a-jwt', transport: 'sse' });
    clients.push(c);
    const seen = observe(c);
    c.connect();
    await eventually(
      () => seen.disconnects.length,
      (n) => n === 1,
    );
    expect(seen.disconnects[0]).toMatchObject({
      code: DisconnectCode.Unauthenticated,
      reconnect: false,
    });
  });

  it('should hand over a new token before the old one expires, without a disconnect', async () => {
    const uid = freshUid();
    const c = new MiniPushClient({
      url: wsUrl,
      transport: 'sse',
      getToken: () => signUserToken(uid, { expiresIn: '3s' }),
      tokenRefreshMarginMs: 2000,
    });
    clients.push(c);
    const seen = observe(c);
    c.connect();
    await eventually(
      () => c.state,
      (s) => s === ConnectionState.Connected,
    );
    // Past the first token's expiry (3 s) the stream runs on a refreshed one
    await new Promise((r) => setTimeout(r, 3500));
    await publish([uid], 'late');
    await eventually(
      () => seen.events.length,
      (n) => n === 1,
    );
    expect(seen.disconnects).toEqual([]);
    expect(c.state).toBe(ConnectionState.Connected);
  });
});

describe('MiniPushClient transport auto (embedded)', () => {
  let stack: Stack;
  let proxy: { url: string; close(): Promise<void> };
  const clients: MiniPushClient[] = [];

  beforeAll(async () => {
    stack = await startStack('embedded', { nudgeWindowMs: 20 }, ['api', 'hub', 'projector']);
    proxy = await noUpgradeProxy(stack.url);
  });

  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await proxy?.close();
    await stack?.close();
  });

  it('should fall back to SSE behind a proxy that refuses WebSocket upgrades', async () => {
    const uid = freshUid();
    const c = new MiniPushClient({
      url: `${proxy.url.replace('http', 'ws')}/v1/ws`,
      token: await signUserToken(uid),
      WebSocket,
      minReconnectDelayMs: 20,
      fallbackAfter: 2,
    });
    clients.push(c);
    const seen = observe(c);
    expect(c.transport).toBe('websocket');
    c.connect();
    await eventually(
      () => c.state,
      (s) => s === ConnectionState.Connected,
    );
    expect(c.transport).toBe('sse');
    // Two refused upgrades, then SSE
    expect(seen.disconnects.map((d) => d.reconnect)).toEqual([true, true]);
    const res = await stack.call('POST', '/v1/events?wait=true', {
      body: { to: [uid], body: 'via sse' },
    });
    expect(res.status).toBe(200);
    await eventually(
      () => seen.events.length,
      (n) => n === 1,
    );
    expect(seen.events[0]!.body).toBe('via sse');
  });

  it('should stay on the WebSocket where upgrades pass', async () => {
    const uid = freshUid();
    const c = new MiniPushClient({
      url: `${stack.url.replace('http', 'ws')}/v1/ws`,
      token: await signUserToken(uid),
      WebSocket,
    });
    clients.push(c);
    c.connect();
    await eventually(
      () => c.state,
      (s) => s === ConnectionState.Connected,
    );
    expect(c.transport).toBe('websocket');
  });

  it('should only use the WebSocket with transport websocket, even behind such a proxy', async () => {
    const c = new MiniPushClient({
      url: `${proxy.url.replace('http', 'ws')}/v1/ws`,
      token: await signUserToken(freshUid()),
      WebSocket,
      transport: 'websocket',
      minReconnectDelayMs: 20,
      maxReconnectDelayMs: 40,
    });
    clients.push(c);
    const seen = observe(c);
    c.connect();
    await eventually(
      () => seen.disconnects.length,
      (n) => n >= 4,
    );
    expect(c.transport).toBe('websocket');
    expect(c.state).toBe(ConnectionState.Connecting);
  });
});
