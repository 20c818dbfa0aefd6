import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator } from '../../../src/auth/authenticator.js';
import { loadConfig } from '../../../src/config.js';
import { createLogger } from '../../../src/logger.js';
import type { MiniPushService } from '../../../src/service.js';
import { buildHttpApp, type HttpApp } from '../../../src/transports/http/app.js';

const API_KEY = 'replies-api-key-0123456789';
const auth = { authorization: `Bearer ${API_KEY}` };

/** Writes raw bytes and returns the status line and body of the answer. */
function raw(port: number, request: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
    socket.on('error', reject);
    socket.on('close', () => {
      const [head = '', body = ''] = data.split('\r\n\r\n');
      resolve({ status: Number(head.split(' ')[1]), body: JSON.parse(body) });
    });
    socket.write(request);
  });
}

describe('REST answers in the catalogue shape for what never reaches a route', () => {
  let app: HttpApp;
  let url: string;
  let port: number;

  beforeAll(async () => {
    const refuse = () => Promise.reject(new Error('not reached'));
    app = await buildHttpApp({
      service: {
        settings: loadConfig({ env: {} }),
        stats: refuse,
        publish: refuse,
      } as unknown as MiniPushService,
      authenticator: new Authenticator({ ...loadConfig({ env: {} }), apiKeys: [API_KEY] }),
      logger: createLogger('silent'),
      readiness: () => Promise.resolve({ ready: true, checks: {} }),
      version: 'test',
      bodyLimit: 64 * 1024,
      devTokenSecret: null,
    });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    port = Number(new URL(url).port);
  });
  afterAll(() => app.close());

  it('should answer headers over the limit with 431 MINIPUSH_HEADERS_TOO_LARGE', async () => {
    const res = await raw(
      port,
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    expect(res.status).toBe(431);
    expect(res.body.error.code).toBe('MINIPUSH_HEADERS_TOO_LARGE');
  });

  it('should answer a malformed request with 400 MINIPUSH_BAD_REQUEST', async () => {
    const res = await raw(port, 'GARBAGE\r\n\r\n');
    expect(res).toEqual({
      status: 400,
      body: {
        error: {
          code: 'MINIPUSH_BAD_REQUEST',
          message: expect.stringMatching(/malformed HTTP request/),
        },
      },
    });
  });

  it('should answer a URL it cannot decode with 400 and how to encode it', async () => {
    const res = await fetch(`${url}/v1/users/%zz/stats`, { headers: auth });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: { code: 'MINIPUSH_BAD_REQUEST', message: expect.stringMatching(/percent-encode/) },
    });
  });

  it('should answer a method a route does not take with 405 and Allow', async () => {
    const res = await fetch(`${url}/v1/users/1/stats`, { method: 'DELETE', headers: auth });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD');
    expect(((await res.json()) as any).error).toEqual({
      code: 'MINIPUSH_METHOD_NOT_ALLOWED',
      message: 'DELETE is not allowed on /v1/users/1/stats; use GET, HEAD',
    });
    const missing = await fetch(`${url}/v1/nowhere`, { method: 'DELETE', headers: auth });
    expect(missing.status).toBe(404);
  });

  it('should list the accepted values of an enum parameter', async () => {
    const order = await fetch(`${url}/v1/users/1/events?from=1&to=2&order=up`, { headers: auth });
    expect(((await order.json()) as any).error.message).toBe(
      'querystring.order must be one of asc, desc',
    );
    const format = await fetch(`${url}/v1/users/1/read-states?format=xml`, { headers: auth });
    expect(((await format.json()) as any).error.message).toBe(
      'querystring.format must be one of roaring, blocks, compact',
    );
  });

  it.each([
    ['text/plain', '{"to":[1],"body":1}'],
    ['application/x-www-form-urlencoded', 'to=1&body=1'],
  ])('should answer a %s body with 415 and the type to send', async (type, body) => {
    const res = await fetch(`${url}/v1/events`, {
      method: 'POST',
      headers: { ...auth, 'content-type': type },
      body,
    });
    expect(res.status).toBe(415);
    expect(((await res.json()) as any).error).toEqual({
      code: 'MINIPUSH_UNSUPPORTED_MEDIA_TYPE',
      message: `send the body as application/json (not ${type})`,
    });
  });
});
