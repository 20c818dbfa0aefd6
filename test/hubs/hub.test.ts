import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLOSE_CODES } from '../../src/protocol/websocket.js';
import { decodeBitmap } from '../../src/domain/read-bitmap.js';
import type { Backend } from '../helpers/services.js';
import { API_KEY, signUserToken, startStack, type Stack } from '../helpers/stack.js';
import { connect, upgradeWithFrames, type TestSocket } from '../helpers/ws-client.js';

let nextUid = 90_000;
const freshUid = () => nextUid++;

describe.each<Backend>(['kafka+mysql', 'embedded'])('hub on %s', (backend) => {
  let stack: Stack;
  let wsUrl: string;
  const open: TestSocket[] = [];

  async function session(
    uid: number,
    options: Parameters<typeof connect>[1] = {},
  ): Promise<TestSocket> {
    const socket = await connect(wsUrl, { token: await signUserToken(uid), ...options });
    open.push(socket);
    await socket.next((m) => m.type === 'hello');
    return socket;
  }

  async function publish(to: number[], body: unknown = {}, wait = false) {
    const res = await stack.call('POST', `/v1/events${wait ? '?wait=true' : ''}`, {
      body: { to, body },
    });
    expect(res.status).toBe(wait ? 200 : 202);
    return res.body;
  }

  beforeAll(async () => {
    stack = await startStack(
      backend,
      {
        nudgeWindowMs: 50,
        wsMaxMessageBytes: 4096,
        sessionQuota: 5,
        maxConnectionsPerIp: 0,
        e2eEnabled: true,
        e2eRatePerMinute: 3,
      },
      ['api', 'hub', 'projector'],
    );
    wsUrl = `${stack.url.replace('http', 'ws')}/v1/ws`;
  });

  afterAll(async () => {
    await Promise.all(open.map((s) => s.close().catch(() => undefined)));
    await stack?.close();
  });

  it('should greet a session with its head, floor, unread count and limits', async () => {
    const uid = freshUid();
    await publish([uid], 1, true);
    await publish([uid], 2, true);
    const socket = await connect(wsUrl, { token: await signUserToken(uid) });
    open.push(socket);
    const hello = await socket.next((m) => m.type === 'hello');
    expect(hello).toMatchObject({
      type: 'hello',
      sessionId: expect.any(String),
      headSeq: 2,
      floorSeq: 1,
      unreadCount: 2,
      readVersion: 0,
      limits: { sessionQuota: 5, maxMessageBytes: 4096, nudgeWindowMs: 50 },
    });
    expect(socket.messages[0].type).toBe('hello');
  });

  it('should answer requests sent before the token is checked, after hello', async () => {
    const uid = freshUid();
    await publish([uid], 'first', true);
    // The frames travel with the upgrade request: the server has them before the token is
    // checked. They used to be dropped.
    const early = upgradeWithFrames(`${wsUrl}?token=${await signUserToken(uid)}`, [
      JSON.stringify({ type: 'diff', reqId: 'd1', after: 0 }),
      JSON.stringify({ type: 'stats', reqId: 's1' }),
      JSON.stringify({ type: 'ping', reqId: 'p1' }),
    ]);
    const received = early.messages;
    await expect.poll(() => received.length, { timeout: 15_000 }).toBe(4);
    // Hello first; then every answer (answers go out as they are ready, matched by reqId).
    expect(received[0].type).toBe('hello');
    const byId = new Map(received.slice(1).map((m) => [m.reqId, m]));
    expect(byId.get('d1')).toMatchObject({
      type: 'diff',
      headSeq: 1,
      events: [{ seq: 1, body: 'first' }],
    });
    expect(byId.get('s1')).toMatchObject({ type: 'stats', headSeq: 1, unreadCount: 1 });
    expect(byId.get('p1')).toMatchObject({ type: 'pong' });
    early.close();
  });

  it('should nudge every session of the recipient and no one else', async () => {
    const [uid, other] = [freshUid(), freshUid()];
    const tabs = [await session(uid), await session(uid)];
    const bystander = await session(other);
    await publish([uid], { hi: true });
    for (const tab of tabs) {
      expect(await tab.next((m) => m.type === 'head')).toEqual({
        type: 'head',
        headSeq: 1,
        floorSeq: 1,
        unreadCount: 1,
        unseenCount: 1,
        archivedCount: 0,
        readVersion: 0,
      });
    }
    await publish([other], 'for the bystander', true);
    const own = await bystander.next((m) => m.type === 'head');
    expect(own.headSeq).toBe(1);
    expect(bystander.messages.filter((m) => m.type === 'head')).toHaveLength(1);
  });

  it('should coalesce a burst of 100 events into a few nudges ending at the head, never going down', async () => {
    const uid = freshUid();
    const tab = await session(uid);
    await Promise.all(Array.from({ length: 100 }, (_, i) => publish([uid], i)));
    await tab.next((m) => m.type === 'head' && m.headSeq === 100, 20_000);
    await new Promise((r) => setTimeout(r, 300));
    const heads = tab.messages.filter((m) => m.type === 'head').map((m) => m.headSeq);
    expect(heads.at(-1)).toBe(100);
    expect(heads.length).toBeLessThan(30);
    expect([...heads].sort((a, b) => a - b)).toEqual(heads);
    expect(new Set(heads).size).toBe(heads.length);
  });

  it('should answer requests with the reqId and make a read from one tab reach the other', async () => {
    const uid = freshUid();
    for (let i = 1; i <= 5; i++) await publish([uid], { n: i }, true);
    const [a, b] = [await session(uid), await session(uid)];
    const diff = await a.request('diff', { after: 2, limit: 2 });
    expect(diff).toMatchObject({ type: 'diff', headSeq: 5, more: true, reset: false });
    expect(diff.events.map((e: any) => e.body)).toEqual([{ n: 3 }, { n: 4 }]);
    const fetched = await a.request('fetch', { from: 1, to: 5, order: 'asc', limit: 2 });
    expect(fetched.events.map((e: any) => e.seq)).toEqual([1, 2]);
    const marked = await a.request('markRead', { seqs: [1, 2] });
    expect(marked).toMatchObject({ type: 'markRead', changed: 2 });
    // Read-your-writes: the answer comes after projection, so a read right after sees it.
    expect(await a.request('stats')).toMatchObject({
      type: 'stats',
      unreadCount: 3,
      readVersion: 1,
    });
    expect(await b.next((m) => m.type === 'head' && m.readVersion === 1)).toMatchObject({
      unreadCount: 3,
      headSeq: 5,
    });
    const states = await a.request('readStates', {});
    expect(decodeBitmap(Buffer.from(states.bitmap, 'base64')).toArray()).toEqual([1, 2]);
    const unread = await b.request('markUnread', { seqs: [2] });
    expect(unread).toMatchObject({ changed: 1 });
    expect(await a.next((m) => m.type === 'head' && m.readVersion === 2)).toMatchObject({
      unreadCount: 4,
    });
    const upTo = await b.request('markRead', { upTo: 5 });
    expect(upTo.changed).toBe(4);
    const bad = await a.request('diff', { after: -3 });
    expect(bad).toMatchObject({ type: 'error', code: 'MINIPUSH_INVALID_SEQ' });
    const tooMuch = await a.request('diff', { limit: 100_000 });
    expect(tooMuch).toMatchObject({ type: 'error', code: 'MINIPUSH_LIMIT_TOO_LARGE' });
  });

  it('should kick the oldest session with kickoff and close code 4500 when the quota is passed', async () => {
    const uid = freshUid();
    const tabs: TestSocket[] = [];
    for (let i = 0; i < 5; i++) tabs.push(await session(uid));
    const sixth = await session(uid);
    expect(await tabs[0]!.next((m) => m.type === 'kickoff')).toMatchObject({ type: 'kickoff' });
    expect(await tabs[0]!.closed).toMatchObject({ code: CLOSE_CODES.kickedOff });
    await new Promise((r) => setTimeout(r, 200));
    for (const tab of [...tabs.slice(1), sixth]) expect(tab.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('should answer malformed messages with an error and close on binary and oversize frames', async () => {
    const uid = freshUid();
    const socket = await session(uid);
    socket.send('{not json');
    expect(await socket.next((m) => m.type === 'error')).toMatchObject({
      code: 'MINIPUSH_BAD_REQUEST',
      message: 'message is not valid JSON',
    });
    socket.send({ type: 'teleport', reqId: 7 });
    expect(await socket.next((m) => m.type === 'error' && m.reqId === 7)).toMatchObject({
      message: expect.stringMatching(/unknown message type "teleport"/),
    });
    socket.send({ type: 'diff' });
    expect(
      await socket.next((m) => m.type === 'error' && /needs a reqId/.test(m.message)),
    ).toBeTruthy();
    expect(socket.ws.readyState).toBe(WebSocket.OPEN);

    const binary = await session(uid);
    binary.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect((await binary.closed).code).toBe(CLOSE_CODES.unsupportedData);

    const big = await session(uid);
    big.send({ type: 'ping', reqId: 1, pad: 'x'.repeat(5000) });
    expect((await big.closed).code).toBe(CLOSE_CODES.messageTooBig);
  });

  it('should refuse missing, bad and expired tokens with an error then 4401, and API keys with 4503', async () => {
    const uid = freshUid();
    const cases: Array<[string | undefined, number, string]> = [
      [undefined, CLOSE_CODES.unauthenticated, 'MINIPUSH_UNAUTHENTICATED'],
      ['garbage', CLOSE_CODES.unauthenticated, 'MINIPUSH_UNAUTHENTICATED'],
      [
        await signUserToken(uid, { expiresIn: Math.floor(Date.now() / 1000) - 10 }),
        CLOSE_CODES.unauthenticated,
        'MINIPUSH_TOKEN_EXPIRED',
      ],
      [
        await signUserToken(uid, { secret: 'another-secret-another-secret-1234' }),
        CLOSE_CODES.unauthenticated,
        'MINIPUSH_UNAUTHENTICATED',
      ],
      [API_KEY, CLOSE_CODES.forbidden, 'MINIPUSH_FORBIDDEN'],
    ];
    for (const [token, closeCode, errorCode] of cases) {
      const socket = await connect(wsUrl, token === undefined ? {} : { token });
      expect(await socket.next((m) => m.type === 'error')).toMatchObject({ code: errorCode });
      expect((await socket.closed).code).toBe(closeCode);
      expect(socket.messages.some((m) => m.type === 'hello')).toBe(false);
    }
  });

  it('should end a session when its token expires: an error, then close code 4402', async () => {
    const uid = freshUid();
    const socket = await connect(wsUrl, { token: await signUserToken(uid, { expiresIn: '2s' }) });
    open.push(socket);
    const hello = await socket.next((m) => m.type === 'hello');
    expect(hello.tokenExpiresAt).toBeGreaterThan(Date.now());
    expect(hello.tokenExpiresAt).toBeLessThanOrEqual(Date.now() + 2000);
    const closed = await socket.closed;
    expect(closed.code).toBe(CLOSE_CODES.tokenExpired);
    expect(socket.messages.at(-1)).toMatchObject({
      type: 'error',
      code: 'MINIPUSH_TOKEN_EXPIRED',
      message: expect.stringContaining('send refresh with a new token'),
    });
    // Nothing was answered after the expiry.
    expect(socket.messages.filter((m) => m.type === 'diff')).toEqual([]);
  });

  it('should outlive its first token after a refresh with a new one for the same uid', async () => {
    const uid = freshUid();
    const socket = await connect(wsUrl, { token: await signUserToken(uid, { expiresIn: '2s' }) });
    open.push(socket);
    await socket.next((m) => m.type === 'hello');
    // Refusals leave the session as it was.
    expect(await socket.request('refresh', { token: await signUserToken(uid + 1) })).toMatchObject({
      type: 'error',
      code: 'MINIPUSH_FORBIDDEN',
      message: `the new token is for uid ${uid + 1}; this session is for uid ${uid}`,
    });
    expect(await socket.request('refresh', { token: API_KEY })).toMatchObject({
      code: 'MINIPUSH_FORBIDDEN',
    });
    expect(await socket.request('refresh', { token: 'garbage' })).toMatchObject({
      code: 'MINIPUSH_UNAUTHENTICATED',
    });
    expect(await socket.request('refresh', {})).toMatchObject({ code: 'MINIPUSH_BAD_REQUEST' });
    const refreshed = await socket.request('refresh', {
      token: await signUserToken(uid, { expiresIn: '1h' }),
    });
    expect(refreshed).toMatchObject({ type: 'refresh', tokenExpiresAt: expect.any(Number) });
    expect(refreshed.tokenExpiresAt).toBeGreaterThan(Date.now() + 3_500_000);
    await new Promise((r) => setTimeout(r, 3500));
    expect(await socket.request('stats')).toMatchObject({ type: 'stats', headSeq: 0 });
    expect(socket.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('should accept the token as a bearer.<token> subprotocol', async () => {
    const uid = freshUid();
    const socket = await connect(wsUrl, {
      protocols: ['minipush.v1', `bearer.${await signUserToken(uid)}`],
    });
    open.push(socket);
    expect(socket.ws.protocol).toBe('minipush.v1');
    expect(await socket.next((m) => m.type === 'hello')).toMatchObject({ headSeq: 0 });
  });

  it('should carry end-to-end messages as events from the sender, within size and rate limits', async () => {
    const [alice, bob] = [freshUid(), freshUid()];
    const a = await session(alice);
    const b = await session(bob);
    const sent = await a.request('send', { to: [bob], body: { text: 'hi bob' } });
    expect(sent).toMatchObject({
      type: 'send',
      id: expect.any(String),
      position: expect.any(String),
    });
    await b.next((m) => m.type === 'head' && m.headSeq === 1);
    const diff = await b.request('diff', { after: 0 });
    expect(diff.events[0].body).toEqual({ text: 'hi bob' });
    const big = await a.request('send', { to: [bob], body: 'x'.repeat(2000) });
    expect(big).toMatchObject({ type: 'error', code: 'MINIPUSH_BODY_TOO_LARGE' });
    await a.request('send', { to: [bob], body: 2 });
    await a.request('send', { to: [bob], body: 3 });
    expect(await a.request('send', { to: [bob], body: 4 })).toMatchObject({
      type: 'error',
      code: 'MINIPUSH_RATE_LIMITED',
    });
  });
});

describe('hub limits (embedded)', () => {
  let stack: Stack;
  let wsUrl: string;

  beforeAll(async () => {
    stack = await startStack(
      'embedded',
      {
        wsAllowedOrigins: ['https://app.example'],
        maxConnectionsPerIp: 3,
        pingIntervalMs: 200,
        pongTimeoutMs: 300,
        wsMaxBufferedBytes: 1024,
        bodyLimitBytes: 8192,
      },
      ['api', 'hub', 'projector'],
    );
    wsUrl = `${stack.url.replace('http', 'ws')}/v1/ws`;
  });

  afterAll(async () => {
    await stack?.close();
  });

  const origin = { headers: { origin: 'https://app.example' } };

  it('should refuse an Origin outside the allow-list before upgrading', async () => {
    const token = await signUserToken(1);
    await expect(
      connect(wsUrl, { token, headers: { origin: 'https://evil.example' } }),
    ).rejects.toMatchObject({ status: 403 });
    await expect(connect(wsUrl, { token })).rejects.toMatchObject({ status: 403 });
    const ok = await connect(wsUrl, { token, ...origin });
    await ok.next((m) => m.type === 'hello');
    await ok.close();
  });

  it('should refuse connections over the per-IP limit with 429', async () => {
    const token = await signUserToken(2);
    const held = [
      await connect(wsUrl, { token, ...origin }),
      await connect(wsUrl, { token, ...origin }),
      await connect(wsUrl, { token, ...origin }),
    ];
    await expect(connect(wsUrl, { token, ...origin })).rejects.toMatchObject({ status: 429 });
    await held[0]!.close();
    await new Promise((r) => setTimeout(r, 50));
    const again = await connect(wsUrl, { token, ...origin });
    await Promise.all([again, ...held].map((s) => s.close()));
  });

  it('should close a session that stops answering pings with 4009', async () => {
    const socket = await connect(wsUrl, {
      token: await signUserToken(3),
      autoPong: false,
      ...origin,
    });
    await socket.next((m) => m.type === 'hello');
    expect((await socket.closed).code).toBe(CLOSE_CODES.pingTimeout);
  });

  it('should close a session that does not read before its buffer grows without bound', async () => {
    const uid = 4;
    for (let i = 0; i < 40; i++) {
      const res = await stack.call('POST', '/v1/events?wait=true', {
        body: { to: [uid], body: 'y'.repeat(6000) },
      });
      expect(res.status).toBe(200);
    }
    const socket = await connect(wsUrl, { token: await signUserToken(uid), ...origin });
    await socket.next((m) => m.type === 'hello');
    const raw = (socket.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    // Stop reading from the TCP socket; requests still go out.
    raw.pause();
    for (let i = 0; i < 200; i++) socket.send({ type: 'diff', reqId: i, after: 0, limit: 40 });
    // The hub drops the session while the client still reads nothing.
    await expect.poll(() => stack.runtime.hub!.counts().sessions, { timeout: 20_000 }).toBe(0);
    raw.resume();
    const { code } = await socket.closed;
    expect([CLOSE_CODES.tooSlow, 1006]).toContain(code);
  });

  it('should close sessions with 1012 (reconnect elsewhere) on shutdown', async () => {
    const socket = await connect(wsUrl, { token: await signUserToken(5), ...origin });
    await socket.next((m) => m.type === 'hello');
    const closing = stack.runtime.http.close();
    expect((await socket.closed).code).toBe(CLOSE_CODES.serviceRestart);
    await closing;
  });
});
