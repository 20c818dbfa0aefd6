import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeBitmap } from '../../src/domain/read-bitmap.js';
import { decodeReadBlock } from '../../src/domain/read-blocks.js';
import { decodeCompact } from '../../src/domain/read-compact.js';
import { JWT_SECRET, signUserToken, startStack, type Stack } from '../helpers/stack.js';
import { expireEverything } from '../helpers/pipeline.js';
import type { Backend } from '../helpers/services.js';

let nextUid = 50_000;
const freshUid = () => nextUid++;

function unsignedToken(uid: number): string {
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const exp = Math.floor(Date.now() / 1000) + 3600;
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ sub: String(uid), exp })}.`;
}

describe.each<Backend>(['kafka+mysql', 'embedded'])('REST API on %s', (backend) => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack(backend, { maxLimit: 500, eventTtlMs: 86_400_000 });
  });

  afterAll(async () => {
    await stack?.close();
  });

  async function publish(to: number[], body: unknown, id?: string) {
    const res = await stack.call('POST', '/v1/events?wait=true', {
      body: { ...(id ? { id } : {}), to, body },
    });
    expect(res.status).toBe(200);
    return res.body as { id: string; seqs: Record<string, number> };
  }

  describe('commands', () => {
    it('POST /v1/events should accept with 202 and a position, then project', async () => {
      const uid = freshUid();
      const res = await stack.call('POST', '/v1/events', {
        body: { id: `a-${uid}`, to: [uid], body: { hi: 1 } },
      });
      expect(res.status).toBe(202);
      expect(res.body).toEqual({ id: `a-${uid}`, position: expect.stringMatching(/^\d+:\d+$/) });
      await expect
        .poll(async () => (await stack.call('GET', `/v1/users/${uid}/stats`)).body.headSeq, {
          timeout: 20_000,
        })
        .toBe(1);
    });

    it('POST /v1/events?wait=true should answer each recipient’s seq, the same again on re-send', async () => {
      const [a, b] = [freshUid(), freshUid()];
      await publish([a], 'first');
      const first = await publish([a, b, a], { x: 1 }, `w-${a}`);
      expect(first).toEqual({ id: `w-${a}`, seqs: { [a]: 2, [b]: 1 } });
      expect(await publish([a, b], { x: 1 }, `w-${a}`)).toEqual(first);
      const generated = await publish([b], 'no id');
      expect(generated.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(generated.seqs).toEqual({ [b]: 2 });
    });

    it('POST /v1/users/:uid/read and /unread should report changes with wait=true and 202 without', async () => {
      const uid = freshUid();
      for (let i = 0; i < 5; i++) await publish([uid], i);
      const user = await stack.userAuth(uid);
      const read = (body: unknown, wait = true) =>
        stack.call('POST', `/v1/users/${uid}/read${wait ? '?wait=true' : ''}`, {
          auth: user,
          body,
        });
      expect(await read({ seqs: [1, 3] })).toEqual({ status: 200, body: { changed: 2 } });
      expect(await read({ upTo: 4 })).toEqual({ status: 200, body: { changed: 2 } });
      const unread = await stack.call('POST', `/v1/users/${uid}/unread?wait=true`, {
        auth: user,
        body: { seqs: [2, 5] },
      });
      expect(unread).toEqual({ status: 200, body: { changed: 1 } });
      const accepted = await read({ seqs: [5] }, false);
      expect(accepted.status).toBe(202);
      expect(accepted.body.position).toMatch(/^\d+:\d+$/);
      await expect
        .poll(async () => (await stack.call('GET', `/v1/users/${uid}/stats`)).body, {
          timeout: 20_000,
        })
        .toEqual({
          headSeq: 5,
          floorSeq: 1,
          unreadCount: 1,
          unseenCount: 0,
          archivedCount: 0,
          readVersion: 4,
        });
    });
  });

  describe('queries', () => {
    let uid: number;
    beforeAll(async () => {
      uid = freshUid();
      for (let i = 1; i <= 12; i++) await publish([uid], { n: i });
      const res = await stack.call('POST', `/v1/users/${uid}/read?wait=true`, {
        body: { seqs: [2, 3, 7] },
      });
      expect(res.status).toBe(200);
    });

    it('GET events?after= should diff ascending with more and read flags', async () => {
      const page1 = await stack.call('GET', `/v1/users/${uid}/events?after=0&limit=5`);
      expect(page1.status).toBe(200);
      expect(page1.body).toMatchObject({ headSeq: 12, floorSeq: 1, more: true, reset: false });
      expect(page1.body.events.map((e: { seq: number }) => e.seq)).toEqual([1, 2, 3, 4, 5]);
      expect(page1.body.events[1]).toEqual({
        seq: 2,
        createTime: expect.any(Number),
        body: { n: 2 },
        read: true,
        seen: true,
        archived: false,
      });
      const page3 = await stack.call('GET', `/v1/users/${uid}/events?after=10&limit=5`);
      expect(page3.body.events.map((e: { seq: number }) => e.seq)).toEqual([11, 12]);
      expect(page3.body.more).toBe(false);
      const none = await stack.call('GET', `/v1/users/${uid}/events?after=12`);
      expect(none.body).toEqual({
        headSeq: 12,
        floorSeq: 1,
        events: [],
        more: false,
        reset: false,
      });
      const defaults = await stack.call('GET', `/v1/users/${uid}/events`);
      expect(defaults.body.events).toHaveLength(12);
    });

    it('GET events?from=&to= should fetch an inclusive range, newest first by default', async () => {
      const desc = await stack.call('GET', `/v1/users/${uid}/events?from=3&to=6`);
      expect(desc.body.events.map((e: { seq: number }) => e.seq)).toEqual([6, 5, 4, 3]);
      const asc = await stack.call('GET', `/v1/users/${uid}/events?from=3&to=6&order=asc&limit=2`);
      expect(asc.body.events.map((e: { seq: number }) => e.seq)).toEqual([3, 4]);
      expect(asc.body.more).toBe(true);
      const beyond = await stack.call('GET', `/v1/users/${uid}/events?from=11&to=40`);
      expect(beyond.body.events.map((e: { seq: number }) => e.seq)).toEqual([12, 11]);
    });

    it('GET stats should count unread from the bitmap', async () => {
      const res = await stack.call('GET', `/v1/users/${uid}/stats`);
      expect(res.body).toEqual({
        headSeq: 12,
        floorSeq: 1,
        unreadCount: 9,
        unseenCount: 9,
        archivedCount: 0,
        readVersion: 1,
      });
      const nobody = await stack.call('GET', `/v1/users/${freshUid()}/stats`);
      expect(nobody.body).toEqual({
        headSeq: 0,
        floorSeq: 1,
        unreadCount: 0,
        unseenCount: 0,
        archivedCount: 0,
        readVersion: 0,
      });
    });

    it('GET read-states should give a roaring bitmap and the seed blocks that decode to the read seqs', async () => {
      const roaring = await stack.call('GET', `/v1/users/${uid}/read-states`);
      expect(roaring.body.headSeq).toBe(12);
      expect(decodeBitmap(Buffer.from(roaring.body.bitmap, 'base64')).toArray()).toEqual([2, 3, 7]);
      const upTo = await stack.call('GET', `/v1/users/${uid}/read-states?upTo=5`);
      expect(decodeBitmap(Buffer.from(upTo.body.bitmap, 'base64')).toArray()).toEqual([2, 3]);
      const blocks = await stack.call('GET', `/v1/users/${uid}/read-states?format=blocks`);
      expect(blocks.body.blocks).toHaveLength(1);
      expect(blocks.body.blocks[0]).toMatchObject({ seq: 12, len: 12 });
      expect(decodeReadBlock(blocks.body.blocks[0])).toEqual([2, 3, 7]);
      const compact = await stack.call('GET', `/v1/users/${uid}/read-states?format=compact`);
      expect(Object.keys(compact.body).sort()).toEqual(['compact', 'floorSeq', 'headSeq']);
      expect(decodeCompact(Buffer.from(compact.body.compact, 'base64'), 1, 12)).toEqual([2, 3, 7]);
    });

    it('should answer reset once events below the client’s seq expired', async () => {
      const expiring = freshUid();
      for (let i = 0; i < 4; i++) await publish([expiring], i);
      await expireEverything(stack.runtime, stack.config.eventTtlMs);
      await publish([expiring], 'fresh');
      const stale = await stack.call('GET', `/v1/users/${expiring}/events?after=1`);
      expect(stale.body).toMatchObject({ headSeq: 5, floorSeq: 5, reset: true });
      expect(stale.body.events.map((e: { seq: number }) => e.seq)).toEqual([5]);
      const current = await stack.call('GET', `/v1/users/${expiring}/events?after=4`);
      expect(current.body).toMatchObject({ reset: false });
      const range = await stack.call('GET', `/v1/users/${expiring}/events?from=1&to=5`);
      expect(range.body).toMatchObject({ reset: true, floorSeq: 5 });
    });
  });

  describe('auth', () => {
    it('should let a user read its own feed and no other', async () => {
      const [mine, other] = [freshUid(), freshUid()];
      const auth = await stack.userAuth(mine);
      expect((await stack.call('GET', `/v1/users/${mine}/stats`, { auth })).status).toBe(200);
      const denied = await stack.call('GET', `/v1/users/${other}/events`, { auth });
      expect(denied).toEqual({
        status: 403,
        body: {
          error: {
            code: 'MINIPUSH_FORBIDDEN',
            message: `a user token for uid ${mine} cannot access uid ${other}`,
          },
        },
      });
      const mark = await stack.call('POST', `/v1/users/${other}/read`, { auth, body: { upTo: 1 } });
      expect(mark.status).toBe(403);
    });

    it('should keep publishing for API keys', async () => {
      const uid = freshUid();
      const res = await stack.call('POST', '/v1/events', {
        auth: await stack.userAuth(uid),
        body: { to: [uid], body: 1 },
      });
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('MINIPUSH_FORBIDDEN');
    });

    it.each([
      ['no header', null, 'MINIPUSH_UNAUTHENTICATED', /missing credentials/],
      ['not bearer', 'Basic abc', 'MINIPUSH_UNAUTHENTICATED', /malformed Authorization/],
      [
        'unknown API key',
        'Bearer nope',
        'MINIPUSH_UNAUTHENTICATED',
        /not a known API key or a JWT/,
      ],
    ])('should refuse %s with 401', async (_name, auth, code, message) => {
      const res = await stack.call('GET', `/v1/users/1/stats`, { auth });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe(code);
      expect(res.body.error.message).toMatch(message);
    });

    it('should refuse expired, wrongly signed, alg:none and non-uid tokens', async () => {
      const uid = freshUid();
      const path = `/v1/users/${uid}/stats`;
      const expired = await stack.call('GET', path, {
        auth: `Bearer ${await signUserToken(uid, { expiresIn: Math.floor(Date.now() / 1000) - 60 })}`,
      });
      expect(expired.status).toBe(401);
      expect(expired.body.error.code).toBe('MINIPUSH_TOKEN_EXPIRED');
      const forged = await stack.call('GET', path, {
        auth: `Bearer ${await signUserToken(uid, { secret: `${JWT_SECRET}-not` })}`,
      });
      expect(forged.status).toBe(401);
      expect(forged.body.error.message).toMatch(/signature/);
      const none = await stack.call('GET', path, { auth: `Bearer ${unsignedToken(uid)}` });
      expect(none.status).toBe(401);
      const notUid = await stack.call('GET', path, {
        auth: `Bearer ${await signUserToken('alice')}`,
      });
      expect(notUid.status).toBe(401);
      expect(notUid.body.error.message).toMatch(/sub must be a uid/);
    });
  });

  describe('bad parameters', () => {
    it.each([
      ['GET', '/v1/users/abc/events', undefined, 400, 'MINIPUSH_INVALID_UID', /uid/],
      ['GET', '/v1/users/4294967296/events', undefined, 400, 'MINIPUSH_INVALID_UID', /uid/],
      [
        'GET',
        '/v1/users/1/events?after=-1',
        undefined,
        400,
        'MINIPUSH_INVALID_SEQ',
        /after must be >= 0/,
      ],
      [
        'GET',
        '/v1/users/1/events?after=x',
        undefined,
        400,
        'MINIPUSH_INVALID_SEQ',
        /after must be integer/,
      ],
      // Whitespace is not 0, though Ajv's coercion would make it so.
      [
        'GET',
        '/v1/users/1/read-states?upTo=%09',
        undefined,
        400,
        'MINIPUSH_INVALID_SEQ',
        /upTo must be integer/,
      ],
      ['GET', '/v1/users/%20/stats', undefined, 400, 'MINIPUSH_INVALID_UID', /uid must be integer/],
      [
        'GET',
        '/v1/users/1/events?limit=501',
        undefined,
        400,
        'MINIPUSH_LIMIT_TOO_LARGE',
        /limit must be <= 500/,
      ],
      [
        'GET',
        '/v1/users/1/events?limit=0',
        undefined,
        400,
        'MINIPUSH_BAD_REQUEST',
        /limit must be >= 1/,
      ],
      [
        'GET',
        '/v1/users/1/events?from=9&to=3',
        undefined,
        400,
        'MINIPUSH_INVALID_RANGE',
        /from \(9\) must not be greater than to \(3\)/,
      ],
      [
        'GET',
        '/v1/users/1/events?from=3',
        undefined,
        400,
        'MINIPUSH_INVALID_RANGE',
        /needs both from and to/,
      ],
      ['GET', '/v1/users/1/events?order=up', undefined, 400, 'MINIPUSH_BAD_REQUEST', /order/],
      [
        'GET',
        '/v1/users/1/events?bogus=1',
        undefined,
        400,
        'MINIPUSH_BAD_REQUEST',
        /unknown field "bogus"/,
      ],
      [
        'GET',
        '/v1/users/1/read-states?format=png',
        undefined,
        400,
        'MINIPUSH_BAD_REQUEST',
        /format/,
      ],
      [
        'POST',
        '/v1/events',
        { to: [], body: 1 },
        400,
        'MINIPUSH_INVALID_UID',
        /to must NOT have fewer than 1 items/,
      ],
      [
        'POST',
        '/v1/events',
        { to: [-1], body: 1 },
        400,
        'MINIPUSH_INVALID_UID',
        /body.to.0 must be >= 0/,
      ],
      [
        'POST',
        '/v1/events',
        { to: ['7'], body: 1 },
        400,
        'MINIPUSH_INVALID_UID',
        /body.to.0 must be integer/,
      ],
      ['POST', '/v1/events', { to: [1] }, 400, 'MINIPUSH_INVALID_EVENT', /body.body is required/],
      [
        'POST',
        '/v1/events',
        { to: [1], body: 'x'.repeat(5000) },
        413,
        'MINIPUSH_BODY_TOO_LARGE',
        /body is 5002 bytes as JSON; the limit is 4096/,
      ],
      [
        'POST',
        '/v1/events',
        { id: 'has space', to: [1], body: 1 },
        400,
        'MINIPUSH_INVALID_EVENT',
        /printable ASCII/,
      ],
      [
        'POST',
        '/v1/events',
        { to: [1], body: 1, extra: true },
        400,
        'MINIPUSH_BAD_REQUEST',
        /unknown field "extra"/,
      ],
      ['POST', '/v1/events', '{"to":[1],', 400, 'MINIPUSH_BAD_REQUEST', /not valid JSON/],
      [
        'POST',
        '/v1/users/1/read',
        { seqs: [0] },
        400,
        'MINIPUSH_INVALID_SEQ',
        /body.seqs.0 must be >= 1/,
      ],
      ['POST', '/v1/users/1/read', {}, 400, 'MINIPUSH_BAD_REQUEST', /either seqs .* or upTo/],
      ['POST', '/v1/users/1/read', { seqs: [1], upTo: 2 }, 400, 'MINIPUSH_BAD_REQUEST', /not both/],
      [
        'POST',
        '/v1/users/1/unread',
        { upTo: 3 },
        400,
        'MINIPUSH_INVALID_SEQ',
        /body.seqs is required/,
      ],
      [
        'DELETE',
        '/v1/users/1/events',
        undefined,
        405,
        'MINIPUSH_METHOD_NOT_ALLOWED',
        /DELETE is not allowed on \/v1\/users\/1\/events; use GET, HEAD/,
      ],
      ['DELETE', '/v1/nothing', undefined, 404, 'MINIPUSH_NOT_FOUND', /no route DELETE/],
    ])('%s %s should be refused (case %#)', async (method, path, body, status, code, message) => {
      const res = await stack.call(method, path, body === undefined ? {} : { body });
      expect(res.status).toBe(status);
      expect(res.body.error.code).toBe(code);
      expect(res.body.error.message).toMatch(message);
    });

    it('should keep a body with "__proto__" and "constructor" keys exactly as sent', async () => {
      const uid = freshUid();
      const raw =
        '{"to":[UID],"body":{"__proto__":{"polluted":1},"constructor":{"prototype":{"x":1}}}}';
      const res = await stack.call('POST', '/v1/events?wait=true', {
        body: raw.replace('UID', String(uid)),
      });
      expect(res.status).toBe(200);
      const page = await fetch(`${stack.url}/v1/users/${uid}/events?after=0`, {
        headers: { authorization: stack.serviceAuth },
      });
      const text = await page.text();
      expect(text).toContain(
        '"body":{"__proto__":{"polluted":1},"constructor":{"prototype":{"x":1}}}',
      );
      expect(({} as { polluted?: number }).polluted).toBeUndefined();
    });

    it('should refuse an HTTP body over the server limit with 413', async () => {
      const res = await stack.call('POST', '/v1/events', {
        body: { to: [1], body: 'x'.repeat(1024 * 1024) },
      });
      expect(res.status).toBe(413);
      expect(res.body.error.code).toBe('MINIPUSH_BODY_TOO_LARGE');
    });
  });

  describe('operations', () => {
    it('should serve health, readiness and the OpenAPI document without credentials', async () => {
      expect(await stack.call('GET', '/healthz', { auth: null })).toEqual({
        status: 200,
        body: { status: 'ok' },
      });
      const ready = await stack.call('GET', '/readyz', { auth: null });
      expect(ready.status).toBe(200);
      expect(ready.body.checks).toMatchObject({ store: 'ok', log: 'ok', projector: 'ok' });
      const doc = await stack.call('GET', '/v1/openapi.json', { auth: null });
      expect(doc.body.openapi).toBe('3.0.3');
      expect(Object.keys(doc.body.paths)).toEqual(
        expect.arrayContaining([
          '/v1/events',
          '/v1/users/{uid}/events',
          '/v1/users/{uid}/stats',
          '/v1/users/{uid}/read-states',
          '/v1/users/{uid}/read',
          '/v1/users/{uid}/unread',
        ]),
      );
    });
  });
});
