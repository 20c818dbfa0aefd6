import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config.js';
import { API_KEY, signUserToken, startStack, type Stack } from '../../helpers/stack.js';
import { connect } from '../../helpers/ws-client.js';

const APP = 'https://app.example.com';

/** What a browser sends before a cross-origin call with an Authorization header. */
function preflight(stack: Stack, origin: string, path = '/v1/users/1/events') {
  return fetch(`${stack.url}${path}`, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': 'GET',
      'access-control-request-headers': 'authorization',
    },
  });
}

describe('CORS', () => {
  const stacks: Stack[] = [];
  const start = async (overrides: Partial<Config>) => {
    const stack = await startStack('embedded', overrides, ['api', 'hub', 'projector']);
    stacks.push(stack);
    return stack;
  };
  let open: Stack;
  let closed: Stack;

  beforeAll(async () => {
    open = await start({ corsOrigins: [APP] });
    closed = await start({});
  });
  afterAll(async () => {
    await Promise.all(stacks.map((s) => s.close()));
  });

  it('should let an allowed origin preflight and read answers, errors included', async () => {
    const pre = await preflight(open, APP);
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe(APP);
    expect(pre.headers.get('access-control-allow-headers')).toMatch(/authorization/);
    expect(pre.headers.get('access-control-allow-methods')).toMatch(/GET/);
    const token = await signUserToken(1);
    const ok = await fetch(`${open.url}/v1/users/1/stats`, {
      headers: { origin: APP, authorization: `Bearer ${token}` },
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe(APP);
    // A refused call is readable too, so the page can show why.
    const refused = await fetch(`${open.url}/v1/users/2/stats`, {
      headers: { origin: APP, authorization: `Bearer ${token}` },
    });
    expect(refused.status).toBe(403);
    expect(refused.headers.get('access-control-allow-origin')).toBe(APP);
  });

  it('should give another origin no CORS headers', async () => {
    const pre = await preflight(open, 'https://evil.example');
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
    const answer = await fetch(`${open.url}/v1/users/1/stats`, {
      headers: { origin: 'https://evil.example', authorization: `Bearer ${API_KEY}` },
    });
    expect(answer.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('should answer no preflight when CORS is off (the default)', async () => {
    const pre = await preflight(closed, APP);
    expect(pre.status).toBe(405);
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('should let WebSockets in from the CORS origins only when no WebSocket list is set', async () => {
    const ws = `${open.url.replace('http', 'ws')}/v1/ws`;
    const token = await signUserToken(3);
    const allowed = await connect(ws, { token, headers: { origin: APP } });
    await allowed.next((m) => m.type === 'hello');
    await allowed.close();
    await expect(
      connect(ws, { token, headers: { origin: 'https://evil.example' } }),
    ).rejects.toMatchObject({
      status: 403,
    });
  });
});
