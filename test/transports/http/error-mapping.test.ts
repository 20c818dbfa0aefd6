import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator } from '../../../src/auth/authenticator.js';
import { loadConfig } from '../../../src/config.js';
import { UnavailableError } from '../../../src/errors.js';
import { createLogger } from '../../../src/logger.js';
import type { MiniPushService } from '../../../src/service.js';
import { buildHttpApp, type HttpApp } from '../../../src/transports/http/app.js';

const API_KEY = 'inject-api-key-0123456789';

/** The service as far as these routes reach it: each query fails the way the test says. */
function failingService(failure: () => Error): MiniPushService {
  const fail = () => Promise.reject(failure());
  return {
    settings: loadConfig({ env: {} }),
    diff: fail,
    fetch: fail,
    stats: fail,
    readStates: fail,
    publish: fail,
    markRead: fail,
    markUnread: fail,
  } as unknown as MiniPushService;
}

async function appWith(failure: () => Error): Promise<HttpApp> {
  return buildHttpApp({
    service: failingService(failure),
    authenticator: new Authenticator({ ...loadConfig({ env: {} }), apiKeys: [API_KEY] }),
    logger: createLogger('silent'),
    readiness: () => Promise.resolve({ ready: true, checks: {} }),
    version: 'test',
    bodyLimit: 1024 * 1024,
    devTokenSecret: null,
  });
}

const auth = { authorization: `Bearer ${API_KEY}` };

describe('REST error mapping (app.inject)', () => {
  let app: HttpApp;

  beforeAll(async () => {
    app = await appWith(() => new Error('a bug'));
  });
  afterAll(() => app.close());

  it.each([
    // [what, request, status, code, message]
    [
      'a path uid of the wrong type',
      { url: '/v1/users/x/stats' },
      400,
      'MINIPUSH_INVALID_UID',
      /params.uid/,
    ],
    [
      'a seq below its range',
      { url: '/v1/users/1/events?after=-1' },
      400,
      'MINIPUSH_INVALID_SEQ',
      /after/,
    ],
    [
      'a page over the maximum',
      { url: '/v1/users/1/events?limit=100000' },
      400,
      'MINIPUSH_LIMIT_TOO_LARGE',
      /limit/,
    ],
    [
      'a page of zero (not a maximum)',
      { url: '/v1/users/1/events?limit=0' },
      400,
      'MINIPUSH_BAD_REQUEST',
      /limit/,
    ],
    [
      'an unknown query field',
      { url: '/v1/users/1/events?foo=1' },
      400,
      'MINIPUSH_BAD_REQUEST',
      /unknown field "foo"/,
    ],
    [
      'a missing recipient list',
      { method: 'POST', url: '/v1/events', payload: { body: 1 } },
      400,
      'MINIPUSH_INVALID_UID',
      /body.to is required/,
    ],
    [
      'a missing body',
      { method: 'POST', url: '/v1/events', payload: { to: [1] } },
      400,
      'MINIPUSH_INVALID_EVENT',
      /body.body is required/,
    ],
    [
      'a bad recipient in the list',
      { method: 'POST', url: '/v1/events', payload: { to: [1, 'x'], body: 1 } },
      400,
      'MINIPUSH_INVALID_UID',
      /to/,
    ],
    [
      'a bad event id',
      { method: 'POST', url: '/v1/events', payload: { id: 'a b', to: [1], body: 1 } },
      400,
      'MINIPUSH_INVALID_EVENT',
      /printable ASCII/,
    ],
    [
      'an empty seq list',
      { method: 'POST', url: '/v1/users/1/unread', payload: { seqs: [] } },
      400,
      'MINIPUSH_INVALID_SEQ',
      /seqs/,
    ],
    [
      'a bad seq in the list',
      { method: 'POST', url: '/v1/users/1/read', payload: { seqs: [1, 0] } },
      400,
      'MINIPUSH_INVALID_SEQ',
      /seqs/,
    ],
    [
      'broken JSON',
      {
        method: 'POST',
        url: '/v1/events',
        payload: '{"to":',
        headers: { 'content-type': 'application/json' },
      },
      400,
      'MINIPUSH_BAD_REQUEST',
      /not valid JSON/,
    ],
    [
      'an unknown route',
      { url: '/v1/nothing' },
      404,
      'MINIPUSH_NOT_FOUND',
      /no route GET \/v1\/nothing/,
    ],
  ])(
    'should answer %s with its status and catalogue code',
    async (_what, request, status, code, message) => {
      const res = await app.inject({
        method: 'GET',
        ...request,
        headers: { ...auth, ...(request as { headers?: object }).headers },
      } as never);
      expect(res.statusCode).toBe(status);
      const body = res.json();
      expect(body).toEqual({ error: { code, message: expect.stringMatching(message) } });
    },
  );

  it('should answer a bug with 500 MINIPUSH_INTERNAL and keep its message to the logs', async () => {
    const res = await app.inject({ url: '/v1/users/1/stats', headers: auth });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error: { code: 'MINIPUSH_INTERNAL', message: 'internal error' } });
  });

  it('should answer a catalogued error with its own status', async () => {
    const down = await appWith(() => new UnavailableError('the store is unavailable; retry'));
    const res = await down.inject({ url: '/v1/users/1/stats', headers: auth });
    expect(res.statusCode).toBe(503);
    expect(res.json().error.code).toBe('MINIPUSH_UNAVAILABLE');
    await down.close();
  });

  it('should answer a dropped store connection with 503 MINIPUSH_UNAVAILABLE', async () => {
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    const down = await appWith(() => reset);
    const res = await down.inject({ url: '/v1/users/1/events', headers: auth });
    expect(res.statusCode).toBe(503);
    expect(res.json().error.code).toBe('MINIPUSH_UNAVAILABLE');
    await down.close();
  });
});
