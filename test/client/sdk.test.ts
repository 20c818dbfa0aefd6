import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ConnectionState,
  DisconnectCode,
  MiniPushClient,
  type DisconnectInfo,
  type FeedEvent,
  type MiniPushClientOptions,
} from '../../src/client/index.js';
import { killAll, spawnMiniPush, type MiniPushProcess } from '../helpers/processes.js';
import { expireEverything } from '../helpers/pipeline.js';
import { freePort, tempDir } from '../helpers/services.js';
import { API_KEY, signUserToken, startStack, type Stack } from '../helpers/stack.js';

let nextUid = 120_000;
const freshUid = () => nextUid++;

/** Records what a client reports, for the assertions. */
function observe(client: MiniPushClient) {
  const seen = {
    events: [] as FeedEvent[],
    iterated: [] as FeedEvent[],
    states: [] as ConnectionState[],
    disconnects: [] as DisconnectInfo[],
    resets: [] as Array<{ floorSeq: number; headSeq: number }>,
    errors: [] as Error[],
    iteration: Promise.resolve(),
  };
  client.on('event', (e) => seen.events.push(e));
  client.on('state', (s) => seen.states.push(s));
  client.on('disconnect', (d) => seen.disconnects.push(d));
  client.on('reset', (r) => seen.resets.push(r));
  client.on('error', (e) => seen.errors.push(e));
  seen.iteration = (async () => {
    for await (const event of client.events()) seen.iterated.push(event);
  })();
  return seen;
}

const seqsOf = (events: readonly FeedEvent[]) => events.map((e) => e.seq);
const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('MiniPushClient against the built server (embedded default)', () => {
  const dataDir = tempDir('minipush-sdk-');
  const processes: MiniPushProcess[] = [];
  const clients: MiniPushClient[] = [];

  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await Promise.all(processes.map((p) => p.kill()));
    await killAll();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  async function serve(port: number): Promise<MiniPushProcess> {
    const server = await spawnMiniPush({
      MINIPUSH_DATA_DIR: dataDir,
      MINIPUSH_HTTP_PORT: String(port),
      MINIPUSH_GRPC_PORT: '-1',
      MINIPUSH_NUDGE_WINDOW: '20ms',
    });
    processes.push(server);
    return server;
  }

  it('should reconnect after the server restarts and catch up without gaps or duplicates', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const uid = freshUid();
    let first = await serve(port);
    const { apiKey } = JSON.parse(
      fs.readFileSync(path.join(dataDir, 'dev-credentials.json'), 'utf8'),
    ) as { apiKey: string };
    const publish = async (url: string, n: number) => {
      const res = await fetch(`${url}/v1/events?wait=true`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ to: [uid], body: { n } }),
      });
      expect(res.status).toBe(200);
    };
    let tokens = 0;
    const getToken = async () => {
      tokens++;
      const res = await fetch(`${base}/v1/dev/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ uid, ttlSeconds: 600 }),
      });
      return ((await res.json()) as { token: string }).token;
    };

    for (const n of [1, 2, 3]) await publish(base, n);
    const client = new MiniPushClient({
      url: `ws://127.0.0.1:${port}/v1/ws`,
      getToken,
      WebSocket,
      minReconnectDelayMs: 50,
      maxReconnectDelayMs: 400,
      pageSize: 2,
    });
    clients.push(client);
    const seen = observe(client);
    client.connect();
    // Three events in pages of two: the first catch-up has to follow `more`.
    await expect.poll(() => seqsOf(seen.iterated), { timeout: 15_000 }).toEqual([1, 2, 3]);
    await publish(base, 4);
    await expect.poll(() => seqsOf(seen.iterated), { timeout: 15_000 }).toEqual([1, 2, 3, 4]);

    await first.kill('SIGTERM');
    await expect
      .poll(() => seen.disconnects[0], { timeout: 15_000 })
      .toMatchObject({
        code: DisconnectCode.ServiceRestart,
        reconnect: true,
      });
    expect(client.state).toBe(ConnectionState.Connecting);

    // Events published while the client cannot reach its server: the same data, another port.
    const elsewhere = await serve(0);
    for (const n of [5, 6, 7]) await publish(elsewhere.url!, n);
    await elsewhere.kill('SIGTERM');
    // The client kept trying the dead port meanwhile.
    expect(seen.disconnects.length).toBeGreaterThan(1);
    expect(seqsOf(seen.iterated)).toEqual([1, 2, 3, 4]);

    first = await serve(port);
    await expect.poll(() => seqsOf(seen.iterated), { timeout: 20_000 }).toEqual(range(1, 7));
    await publish(base, 8);
    await expect.poll(() => seqsOf(seen.iterated), { timeout: 15_000 }).toEqual(range(1, 8));

    expect(seen.iterated.map((e) => e.body)).toEqual(range(1, 8).map((n) => ({ n })));
    expect(seqsOf(seen.events)).toEqual(range(1, 8));
    expect(seqsOf(client.list())).toEqual(range(1, 8).reverse());
    expect(seen.disconnects.every((d) => d.reconnect)).toBe(true);
    expect(seen.states.filter((s) => s === ConnectionState.Connected)).toHaveLength(2);
    expect(seen.errors).toEqual([]);
    // One token served both connections: it was far from expiry.
    expect(tokens).toBe(1);
    expect(client.unreadCount).toBe(8);
    expect(client.head).toMatchObject({ headSeq: 8, floorSeq: 1, unreadCount: 8 });

    client.disconnect();
    await seen.iteration;
    expect(client.state).toBe(ConnectionState.Disconnected);
    expect(seen.disconnects.at(-1)).toMatchObject({
      code: DisconnectCode.ClientClosed,
      reconnect: false,
    });
  });
});

describe('MiniPushClient on an in-process hub', () => {
  let stack: Stack;
  let wsUrl: string;
  const clients: MiniPushClient[] = [];

  beforeAll(async () => {
    stack = await startStack(
      'embedded',
      { sessionQuota: 2, nudgeWindowMs: 20, maxConnectionsPerIp: 0, eventTtlMs: 86_400_000 },
      ['api', 'hub', 'projector'],
    );
    wsUrl = `${stack.url.replace('http', 'ws')}/v1/ws`;
  });

  afterEach(() => {
    for (const client of clients.splice(0)) client.disconnect();
  });

  afterAll(async () => {
    await stack?.close();
  });

  function client(uid: number, options: Partial<MiniPushClientOptions> = {}): MiniPushClient {
    const made = new MiniPushClient({
      url: wsUrl,
      getToken: () => signUserToken(uid),
      WebSocket,
      minReconnectDelayMs: 20,
      maxReconnectDelayMs: 100,
      ...options,
    });
    clients.push(made);
    return made;
  }

  async function connected(c: MiniPushClient) {
    c.connect();
    await expect.poll(() => c.state, { timeout: 10_000 }).toBe(ConnectionState.Connected);
  }

  async function publish(uid: number, count: number) {
    for (let i = 0; i < count; i++) {
      const res = await stack.call('POST', '/v1/events?wait=true', {
        body: { to: [uid], body: { i } },
      });
      expect(res.status).toBe(200);
    }
  }

  async function serverStats(uid: number) {
    return (await stack.call('GET', `/v1/users/${uid}/stats`)).body;
  }

  it('should drop its cache on reset after TTL cleaning and refetch the newest page', async () => {
    const uid = freshUid();
    await publish(uid, 2);
    const c = client(uid, { pageSize: 3 });
    const seen = observe(c);
    await connected(c);
    await expect.poll(() => seqsOf(c.list())).toEqual([2, 1]);
    c.disconnect();

    // Away for longer than the TTL: 3 and 4 arrive and expire with 1 and 2 before it is back.
    await publish(uid, 2);
    await expireEverything(stack.runtime, stack.config.eventTtlMs);
    await publish(uid, 5);
    expect(await serverStats(uid)).toMatchObject({ headSeq: 9, floorSeq: 5 });

    c.connect();
    await expect.poll(() => seqsOf(c.list()), { timeout: 10_000 }).toEqual([9, 8, 7]);
    expect(seen.resets).toEqual([{ floorSeq: 5, headSeq: 9 }]);
    expect(seqsOf(seen.events)).toEqual([1, 2, 7, 8, 9]);
    expect(c.lastSeq).toBe(9);

    await publish(uid, 1);
    await expect.poll(() => seqsOf(c.list()), { timeout: 10_000 }).toEqual([10, 9, 8, 7]);
    expect(c.unreadCount).toBe((await serverStats(uid)).unreadCount);
    expect(c.unreadCount).toBe(6);
  });

  it('should stop for good after a kickoff instead of reconnecting', async () => {
    const uid = freshUid();
    const first = client(uid);
    const seen = observe(first);
    await connected(first);
    const second = client(uid);
    await connected(second);
    const third = client(uid);
    await connected(third);

    await expect.poll(() => first.state, { timeout: 10_000 }).toBe(ConnectionState.Disconnected);
    expect(seen.disconnects).toEqual([
      expect.objectContaining({ code: DisconnectCode.KickedOff, reconnect: false }),
    ]);
    await seen.iteration;
    // Many backoff windows later it still has not tried again, and did not kick anyone back.
    await new Promise((r) => setTimeout(r, 1000));
    expect(seen.states).toEqual([
      ConnectionState.Connecting,
      ConnectionState.Connected,
      ConnectionState.Disconnected,
    ]);
    expect(second.state).toBe(ConnectionState.Connected);
    expect(third.state).toBe(ConnectionState.Connected);
    expect(stack.runtime.hub!.counts().sessions).toBe(2);
    await expect(first.markRead([1])).rejects.toMatchObject({ code: 'CLIENT_DISCONNECTED' });
  });

  it('should keep the unread count of two clients equal to the server’s as either marks', async () => {
    const uid = freshUid();
    const [a, b] = [client(uid), client(uid)];
    await connected(a);
    await connected(b);
    await publish(uid, 5);
    for (const c of [a, b]) {
      await expect.poll(() => c.unreadCount, { timeout: 10_000 }).toBe(5);
      await expect.poll(() => c.list().length).toBe(5);
    }

    expect(await a.markRead([1, 2])).toEqual({ changed: 2 });
    // Settled when markRead resolves, not only once a nudge arrives.
    expect(a.unreadCount).toBe(3);
    expect(
      a
        .list()
        .filter((e) => e.read)
        .map((e) => e.seq),
    ).toEqual([2, 1]);
    await expect.poll(() => b.unreadCount, { timeout: 10_000 }).toBe(3);
    await expect
      .poll(
        () =>
          b
            .list()
            .filter((e) => e.read)
            .map((e) => e.seq),
        { timeout: 10_000 },
      )
      .toEqual([2, 1]);

    expect(await b.markAllRead()).toEqual({ changed: 3 });
    expect(b.unreadCount).toBe(0);
    await expect.poll(() => a.unreadCount, { timeout: 10_000 }).toBe(0);
    await expect.poll(() => a.list().every((e) => e.read), { timeout: 10_000 }).toBe(true);

    expect(await a.markUnread([4])).toEqual({ changed: 1 });
    await expect.poll(() => b.unreadCount, { timeout: 10_000 }).toBe(1);
    await expect
      .poll(
        () =>
          b
            .list()
            .filter((e) => !e.read)
            .map((e) => e.seq),
        { timeout: 10_000 },
      )
      .toEqual([4]);
    expect((await serverStats(uid)).unreadCount).toBe(1);
    expect(a.unreadCount).toBe(1);
  });

  it('should cache archived events with their flags and follow seen and archive marks of another client', async () => {
    const uid = freshUid();
    await publish(uid, 4);
    // Archived before either client connects: the server's default view would leave it out.
    const archived = await stack.call('POST', `/v1/users/${uid}/archive?wait=true`, {
      body: { seqs: [1] },
    });
    expect(archived.body).toEqual({ changed: 1 });
    const [a, b] = [client(uid), client(uid)];
    const flagsOfB: string[] = [];
    b.on('seen', (c) => flagsOfB.push(`seen ${c.seqs.join(',')} ${c.seen}`));
    b.on('archived', (c) => flagsOfB.push(`archived ${c.seqs.join(',')} ${c.archived}`));
    const badgeOfB: number[] = [];
    b.on('unseen', (n) => badgeOfB.push(n));
    const headsOfB: number[] = [];
    b.on('head', (h) => headsOfB.push(h.unseenCount));
    await connected(a);
    await connected(b);
    for (const c of [a, b]) {
      await expect.poll(() => seqsOf(c.list()), { timeout: 10_000 }).toEqual([4, 3, 2, 1]);
      expect(c.list()[3]).toMatchObject({ seq: 1, read: false, seen: false, archived: true });
      expect(seqsOf(c.list({ status: 'archived' }))).toEqual([1]);
      expect(seqsOf(c.list({ status: 'unseen' }))).toEqual([4, 3, 2]);
      expect(c.counts).toEqual({ unreadCount: 3, unseenCount: 3, archivedCount: 1 });
    }

    // Opening the inbox in a: everything up to the head is seen, still unread.
    const { changed } = await a.markAllSeen();
    expect(changed).toBeGreaterThanOrEqual(3);
    expect(a.unseenCount).toBe(0);
    expect(a.list().every((e) => e.seen && !e.read)).toBe(true);
    await expect.poll(() => b.unseenCount, { timeout: 10_000 }).toBe(0);
    await expect.poll(() => b.list().every((e) => e.seen), { timeout: 10_000 }).toBe(true);
    expect(badgeOfB).toEqual([3, 0]);
    expect(headsOfB.at(-1)).toBe(0);
    expect(flagsOfB).toEqual(['seen 1,2,3,4 true']);
    expect(b.unreadCount).toBe(3);

    expect(await b.archive([2])).toEqual({ changed: 1 });
    expect(b.counts).toEqual({ unreadCount: 2, unseenCount: 0, archivedCount: 2 });
    expect(seqsOf(b.list({ status: 'unarchived' }))).toEqual([4, 3]);
    await expect
      .poll(() => seqsOf(a.list({ status: 'archived' })), { timeout: 10_000 })
      .toEqual([2, 1]);
    await expect.poll(() => a.archivedCount, { timeout: 10_000 }).toBe(2);

    expect(await a.unarchive([1, 2])).toEqual({ changed: 2 });
    expect(a.archivedCount).toBe(0);
    await expect.poll(() => b.list({ status: 'archived' }).length, { timeout: 10_000 }).toBe(0);
    expect(flagsOfB).toEqual(['seen 1,2,3,4 true', 'archived 2 true', 'archived 1,2 false']);
    await expect.poll(() => b.unreadCount, { timeout: 10_000 }).toBe(4);

    // A new event is unseen until marked; reading marks it seen too.
    await publish(uid, 2);
    await expect.poll(() => a.unseenCount, { timeout: 10_000 }).toBe(2);
    expect(await a.markSeen([5])).toEqual({ changed: 1 });
    expect(a.list()[1]).toMatchObject({ seq: 5, seen: true, read: false });
    expect(await a.markRead([6])).toEqual({ changed: 1 });
    expect(a.list()[0]).toMatchObject({ seq: 6, seen: true, read: true });
    expect(a.unseenCount).toBe(0);
    await expect
      .poll(() => b.list({ status: 'unread' }).map((e) => e.seq), { timeout: 10_000 })
      .toEqual([5, 4, 3, 2, 1]);
    await expect.poll(() => b.list({ status: 'unseen' }).length, { timeout: 10_000 }).toBe(0);
    expect(await serverStats(uid)).toMatchObject({ ...a.counts, headSeq: 6 });
    expect(b.counts).toEqual(a.counts);
  });

  it('should ask getToken for a new token after 4401 and before using one about to expire', async () => {
    const uid = freshUid();
    let refusedAsks = 0;
    const refused = client(uid, {
      token: await signUserToken(uid, { secret: 'not-the-server-secret-0123456789abcdef' }),
      getToken: async () => {
        refusedAsks++;
        return signUserToken(uid);
      },
    });
    const refusedSeen = observe(refused);
    await connected(refused);
    expect(refusedAsks).toBe(1);
    expect(refusedSeen.disconnects).toEqual([
      expect.objectContaining({ code: DisconnectCode.Unauthenticated, reconnect: true }),
    ]);

    let expiringAsks = 0;
    const expiring = client(uid, {
      token: await signUserToken(uid, { expiresIn: '10s' }),
      tokenRefreshMarginMs: 30_000,
      getToken: async () => {
        expiringAsks++;
        return signUserToken(uid);
      },
    });
    const expiringSeen = observe(expiring);
    await connected(expiring);
    expect(expiringAsks).toBe(1);
    expect(expiringSeen.disconnects).toEqual([]);
  });

  it('should hand its open session a new token before the old one expires, keeping the socket', async () => {
    const uid = freshUid();
    let asks = 0;
    // Each token lasts 3 s; the client asks for the next one 2 s before that.
    const c = client(uid, {
      tokenRefreshMarginMs: 2000,
      getToken: async () => {
        asks++;
        return signUserToken(uid, { expiresIn: '3s' });
      },
    });
    const seen = observe(c);
    await connected(c);
    await publish(uid, 1);
    // Past the first and second tokens' expiry: still the same session, no disconnect.
    await new Promise((r) => setTimeout(r, 6500));
    expect(seen.disconnects).toEqual([]);
    expect(c.state).toBe(ConnectionState.Connected);
    expect(asks).toBeGreaterThanOrEqual(3);
    await publish(uid, 1);
    await expect.poll(() => c.list().length, { timeout: 10_000 }).toBe(2);
  });

  it('should reconnect with a new token after the server ends an expired session (4402)', async () => {
    const uid = freshUid();
    let asks = 0;
    const c = client(uid, {
      tokenRefreshMarginMs: 1000,
      getToken: async () => {
        asks++;
        // The in-band refresh (second ask) fails: the session runs out and is closed.
        if (asks === 2) throw new Error('identity provider down');
        return signUserToken(uid, { expiresIn: '2s' });
      },
    });
    const seen = observe(c);
    await connected(c);
    await expect.poll(() => seen.disconnects.length, { timeout: 15_000 }).toBeGreaterThan(0);
    expect(seen.disconnects[0]).toMatchObject({
      code: DisconnectCode.TokenExpired,
      reconnect: true,
    });
    await expect.poll(() => c.state, { timeout: 10_000 }).toBe(ConnectionState.Connected);
    expect(asks).toBeGreaterThanOrEqual(3);
  });

  it('should stop when its token expires and it has no getToken', async () => {
    const uid = freshUid();
    const c = new MiniPushClient({
      url: wsUrl,
      token: await signUserToken(uid, { expiresIn: '2s' }),
      WebSocket,
      minReconnectDelayMs: 20,
    });
    clients.push(c);
    const seen = observe(c);
    await connected(c);
    await expect.poll(() => seen.disconnects.length, { timeout: 15_000 }).toBe(1);
    expect(seen.disconnects).toEqual([
      expect.objectContaining({ code: DisconnectCode.TokenExpired, reconnect: false }),
    ]);
    expect(c.state).toBe(ConnectionState.Disconnected);
  });

  it('should stop on a refused token without getToken, and on an API key (4503)', async () => {
    const uid = freshUid();
    const cases: Array<[string, number]> = [
      [
        await signUserToken(uid, { secret: 'not-the-server-secret-0123456789abcdef' }),
        DisconnectCode.Unauthenticated,
      ],
      [API_KEY, DisconnectCode.Forbidden],
    ];
    for (const [token, code] of cases) {
      const c = new MiniPushClient({ url: wsUrl, token, WebSocket, minReconnectDelayMs: 20 });
      clients.push(c);
      const seen = observe(c);
      c.connect();
      await expect.poll(() => seen.disconnects.length, { timeout: 10_000 }).toBe(1);
      await new Promise((r) => setTimeout(r, 300));
      expect(seen.disconnects).toEqual([expect.objectContaining({ code, reconnect: false })]);
      expect(c.state).toBe(ConnectionState.Disconnected);
      expect(seen.states).toEqual([ConnectionState.Connecting, ConnectionState.Disconnected]);
    }
  });
});
