import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLOSE_CODES } from '../../../src/protocol/websocket.js';
import { eventually } from '../../helpers/pipeline.js';
import { parsePrometheus, valueOf } from '../../helpers/prometheus.js';
import type { Backend } from '../../helpers/services.js';
import { openStream, type TestStream } from '../../helpers/sse-client.js';
import { API_KEY, signUserToken, startStack, type Stack } from '../../helpers/stack.js';
import { connect, type TestSocket } from '../../helpers/ws-client.js';

let nextUid = 230_000;
const freshUid = () => nextUid++;

describe.each<Backend>(['kafka+mysql', 'embedded'])('/v1/sse on %s', (backend) => {
  let stack: Stack;
  let sseUrl: string;
  let wsUrl: string;
  const open: Array<TestStream | TestSocket> = [];

  async function stream(uid: number, headers: Record<string, string> = {}): Promise<TestStream> {
    const s = await openStream(sseUrl, { bearer: await signUserToken(uid), headers });
    open.push(s);
    expect(s.status).toBe(200);
    await s.next((m) => m.type === 'hello');
    return s;
  }

  async function socket(uid: number): Promise<TestSocket> {
    const s = await connect(wsUrl, { token: await signUserToken(uid) });
    open.push(s);
    await s.next((m) => m.type === 'hello');
    return s;
  }

  async function publish(to: number[]) {
    const res = await stack.call('POST', '/v1/events?wait=true', { body: { to, body: {} } });
    expect(res.status).toBe(200);
  }

  async function metric(name: string, labels: Record<string, string>): Promise<number> {
    const res = await fetch(`${stack.url}/metrics`);
    return valueOf(parsePrometheus(await res.text()), name, labels) ?? 0;
  }

  beforeAll(async () => {
    stack = await startStack(
      backend,
      { nudgeWindowMs: 20, sessionQuota: 5, maxConnectionsPerIp: 0 },
      ['api', 'hub', 'projector'],
    );
    sseUrl = `${stack.url}/v1/sse`;
    wsUrl = `${stack.url.replace('http', 'ws')}/v1/ws`;
  });

  afterAll(async () => {
    await Promise.all(open.map((s) => s.close().catch(() => undefined)));
    await stack?.close();
  });

  it('should greet a stream with hello, its id naming the head state, after one retry field', async () => {
    // Given a user with two events, one read
    const uid = freshUid();
    await publish([uid]);
    await publish([uid]);
    const read = await stack.call('POST', `/v1/users/${uid}/read?wait=true`, {
      body: { seqs: [1] },
    });
    expect(read.status).toBe(200);
    // When it opens a stream
    const s = await stream(uid);
    // Then the headers say event stream, unbuffered, and the first event is the same hello the
    // WebSocket sends, with an id
    expect(s.headers['content-type']).toBe('text/event-stream');
    expect(s.headers['cache-control']).toBe('no-cache');
    expect(s.headers['x-accel-buffering']).toBe('no');
    expect(s.retries).toHaveLength(1);
    expect(s.retries[0]).toBeGreaterThanOrEqual(1000);
    expect(s.retries[0]).toBeLessThanOrEqual(5000);
    const hello = s.messages[0];
    expect(hello).toMatchObject({
      type: 'hello',
      sessionId: expect.any(String),
      headSeq: 2,
      floorSeq: 1,
      unreadCount: 1,
      readVersion: 1,
      limits: { sessionQuota: 5, nudgeWindowMs: 20 },
    });
    expect(s.ids[0]).toBe('2-1');
    const ws = await socket(uid);
    expect(Object.keys(hello).sort()).toEqual(Object.keys(ws.messages[0]).sort());
  });

  it('should send a head event after a publish and after a read mark, each with its id', async () => {
    const uid = freshUid();
    const s = await stream(uid);
    expect(s.ids[0]).toBe('0-0');
    await publish([uid]);
    const head = await s.next((m) => m.type === 'head');
    expect(head).toEqual({
      type: 'head',
      headSeq: 1,
      floorSeq: 1,
      unreadCount: 1,
      unseenCount: 1,
      archivedCount: 0,
      readVersion: 0,
    });
    expect(s.ids[s.messages.indexOf(head)]).toBe('1-0');
    await stack.call('POST', `/v1/users/${uid}/read?wait=true`, { body: { upTo: 1 } });
    const read = await s.next((m) => m.type === 'head');
    expect(read).toMatchObject({ headSeq: 1, unreadCount: 0, readVersion: 1 });
    expect(s.lastEventId()).toBe('1-1');
  });

  it('should take the token from ?token= too', async () => {
    const uid = freshUid();
    const s = await openStream(sseUrl, { token: await signUserToken(uid) });
    open.push(s);
    expect(s.status).toBe(200);
    expect(await s.next((m) => m.type === 'hello')).toMatchObject({ headSeq: 0 });
  });

  it('should resume from Last-Event-ID: hello tells the current state, compared with the id', async () => {
    // Given a stream that was told head 1 and then dropped
    const uid = freshUid();
    await publish([uid]);
    const first = await stream(uid);
    const lastId = first.lastEventId();
    expect(lastId).toBe('1-0');
    await first.close();
    const before = {
      unchanged: await metric('minipush_sse_resumes_total', { result: 'unchanged' }),
      behind: await metric('minipush_sse_resumes_total', { result: 'behind' }),
      ahead: await metric('minipush_sse_resumes_total', { result: 'ahead' }),
    };
    // When it reconnects with nothing new
    const same = await stream(uid, { 'last-event-id': lastId });
    // Then hello says the same state and counts as unchanged
    expect(same.messages[0]).toMatchObject({ type: 'hello', headSeq: 1, readVersion: 0 });
    expect(same.ids[0]).toBe(lastId);
    await same.close();
    // And after a publish while away, the hello tells the newer head (the client diffs)
    await publish([uid]);
    const behind = await stream(uid, { 'last-event-id': lastId });
    expect(behind.messages[0]).toMatchObject({ headSeq: 2 });
    expect(behind.ids[0]).toBe('2-0');
    // And an id this store never made (ahead of it) starts over from the current state
    const ahead = await stream(uid, { 'last-event-id': '99-5' });
    expect(ahead.messages[0]).toMatchObject({ headSeq: 2, readVersion: 0 });
    // The next head goes to both, never lower than hello
    await publish([uid]);
    for (const s of [behind, ahead]) {
      expect(await s.next((m) => m.type === 'head')).toMatchObject({ headSeq: 3 });
    }
    expect(await metric('minipush_sse_resumes_total', { result: 'unchanged' })).toBe(
      before.unchanged + 1,
    );
    expect(await metric('minipush_sse_resumes_total', { result: 'behind' })).toBe(
      before.behind + 1,
    );
    expect(await metric('minipush_sse_resumes_total', { result: 'ahead' })).toBe(before.ahead + 1);
  });

  it('should share the session quota with WebSockets: an SSE session is kicked by sockets', async () => {
    // Given a user's oldest session is an SSE stream
    const uid = freshUid();
    const oldest = await stream(uid);
    // When it opens five WebSockets
    for (let i = 0; i < 5; i++) await socket(uid);
    // Then the stream gets kickoff and a close event with 4500, and ends
    expect(await oldest.next((m) => m.type === 'kickoff')).toMatchObject({
      reason: expect.stringContaining('more than 5 sessions'),
    });
    expect(await oldest.next((m) => m.type === 'close')).toEqual({
      type: 'close',
      code: CLOSE_CODES.kickedOff,
      reason: expect.any(String),
    });
    await oldest.ended;
  });

  it('should share the session quota with WebSockets: a WebSocket is kicked by streams', async () => {
    const uid = freshUid();
    const oldest = await socket(uid);
    const streams: TestStream[] = [];
    for (let i = 0; i < 5; i++) streams.push(await stream(uid));
    expect(await oldest.next((m) => m.type === 'kickoff')).toBeDefined();
    expect((await oldest.closed).code).toBe(CLOSE_CODES.kickedOff);
    // The five streams stay, and hear the next head
    await publish([uid]);
    for (const s of streams)
      expect(await s.next((m) => m.type === 'head')).toMatchObject({ headSeq: 1 });
    // A sixth stream kicks the oldest stream
    await stream(uid);
    expect(await streams[0]!.next((m) => m.type === 'kickoff')).toBeDefined();
    await streams[0]!.ended;
    expect(streams.slice(1).every((s) => !s.messages.some((m) => m.type === 'kickoff'))).toBe(true);
  });

  it('should count SSE sessions in minipush_sessions and forget them when the stream ends', async () => {
    const uid = freshUid();
    const base = await metric('minipush_sessions', {});
    const s = await stream(uid);
    expect(
      await eventually(
        () => metric('minipush_sessions', {}),
        (n) => n === base + 1,
      ),
    ).toBe(base + 1);
    await s.close();
    expect(
      await eventually(
        () => metric('minipush_sessions', {}),
        (n) => n === base,
      ),
    ).toBe(base);
  });
});

describe('/v1/sse refusals and keep-alive (embedded)', () => {
  let stack: Stack;
  let sseUrl: string;
  const origin = 'https://app.example';
  const open: Array<TestStream | TestSocket> = [];

  beforeAll(async () => {
    stack = await startStack(
      'embedded',
      {
        wsAllowedOrigins: [origin],
        maxConnectionsPerIp: 2,
        pingIntervalMs: 200,
        pongTimeoutMs: 300,
      },
      ['api', 'hub', 'projector'],
    );
    sseUrl = `${stack.url}/v1/sse`;
  });

  afterAll(async () => {
    await Promise.all(open.map((s) => s.close().catch(() => undefined)));
    await stack?.close();
  });

  const withOrigin = { origin };

  it('should refuse a missing, bad or expired token, or an API key, with the HTTP error', async () => {
    const cases: Array<[Parameters<typeof openStream>[1], number, string]> = [
      [{ headers: withOrigin }, 401, 'MINIPUSH_UNAUTHENTICATED'],
      [{ headers: withOrigin, bearer: 'not-a-jwt' }, 401, 'MINIPUSH_UNAUTHENTICATED'],
      [{ headers: withOrigin, token: 'not-a-jwt' }, 401, 'MINIPUSH_UNAUTHENTICATED'],
      [
        { headers: withOrigin, bearer: await signUserToken(1, { expiresIn: -10 }) },
        401,
        'MINIPUSH_TOKEN_EXPIRED',
      ],
      [{ headers: withOrigin, bearer: API_KEY }, 403, 'MINIPUSH_FORBIDDEN'],
      [
        { headers: { origin: 'https://evil.example' }, bearer: await signUserToken(1) },
        403,
        'MINIPUSH_FORBIDDEN',
      ],
    ];
    for (const [options, status, code] of cases) {
      const s = await openStream(sseUrl, options);
      expect({ status: s.status, code: s.body?.error?.code }).toEqual({ status, code });
      expect(s.body.error.message).toEqual(expect.any(String));
    }
  });

  it('should count streams and sockets from one address against one per-IP limit', async () => {
    const uid = freshUid();
    const token = await signUserToken(uid);
    const s = await openStream(sseUrl, { bearer: token, headers: withOrigin });
    open.push(s);
    await s.next((m) => m.type === 'hello');
    const ws = await connect(`${stack.url.replace('http', 'ws')}/v1/ws`, {
      token,
      headers: withOrigin,
    });
    open.push(ws);
    await ws.next((m) => m.type === 'hello');
    // A third of either kind is refused
    const third = await openStream(sseUrl, { bearer: token, headers: withOrigin });
    expect({ status: third.status, code: third.body?.error?.code }).toEqual({
      status: 429,
      code: 'MINIPUSH_RATE_LIMITED',
    });
    await expect(
      connect(`${stack.url.replace('http', 'ws')}/v1/ws`, { token, headers: withOrigin }),
    ).rejects.toThrow(/429/);
    // Once the stream ends, its place is free again
    await s.close();
    const again = await eventually(
      () => openStream(sseUrl, { bearer: token, headers: withOrigin }),
      (r) => r.status === 200,
    );
    open.push(again);
    expect(again.status).toBe(200);
  });

  it('should send keep-alive comments and keep a stream that reads them past the pong timeout', async () => {
    await Promise.all(open.splice(0).map((s) => s.close().catch(() => undefined)));
    const uid = freshUid();
    const s = await openStream(sseUrl, { bearer: await signUserToken(uid), headers: withOrigin });
    open.push(s);
    await s.next((m) => m.type === 'hello');
    const pings = await eventually(
      () => s.comments.filter((c) => c === 'ping').length,
      (n) => n > 4,
    );
    expect(pings).toBeGreaterThan(4);
    // Well past pingInterval + pongTimeout, the session lives and is nudged
    const res = await stack.call('POST', '/v1/events?wait=true', { body: { to: [uid], body: {} } });
    expect(res.status).toBe(200);
    expect(await s.next((m) => m.type === 'head')).toMatchObject({ headSeq: 1 });
    expect(s.messages.some((m) => m.type === 'close')).toBe(false);
  });

  it('should end a stream whose token expires with the error and close code 4402', async () => {
    const uid = freshUid();
    const s = await openStream(sseUrl, {
      bearer: await signUserToken(uid, { expiresIn: '2s' }),
      headers: withOrigin,
    });
    open.push(s);
    expect(await s.next((m) => m.type === 'hello')).toMatchObject({
      tokenExpiresAt: expect.any(Number),
    });
    expect(await s.next((m) => m.type === 'error')).toMatchObject({
      code: 'MINIPUSH_TOKEN_EXPIRED',
    });
    expect(await s.next((m) => m.type === 'close')).toMatchObject({
      code: CLOSE_CODES.tokenExpired,
    });
    await s.ended;
  });
});
