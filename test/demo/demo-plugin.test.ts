import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { Config, Role } from '../../src/config.js';
import { startStack, type Stack } from '../helpers/stack.js';

// The page itself is exercised in a browser by test/client/demo-browser.test.ts; these check
// what the server offers, and when.
describe('demo page routes', () => {
  const stacks: Stack[] = [];

  afterEach(async () => {
    await Promise.all(stacks.splice(0).map((s) => s.close()));
  });

  async function stack(overrides: Partial<Config>, roles: Role[] = ['api', 'hub', 'projector']) {
    const made = await startStack('embedded', overrides, roles);
    stacks.push(made);
    return made;
  }

  async function get(s: Stack, path: string) {
    const response = await fetch(`${s.url}${path}`);
    return { status: response.status, headers: response.headers, text: await response.text() };
  }

  it('should serve the built page, its script and style with a same-origin CSP', async () => {
    const s = await stack({});
    const page = await get(s, '/demo');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toMatch(/connect-src 'self'/);
    expect(page.text).toContain('<script type="module" src="/demo/main.js">');
    const script = await get(s, '/demo/main.js');
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toMatch(/^text\/javascript/);
    // The SDK is bundled in: the page needs nothing else.
    expect(script.text).toContain('minipush.v1');
    expect((await get(s, '/demo/style.css')).headers.get('content-type')).toMatch(/^text\/css/);
    const missing = await get(s, '/demo/secrets.txt');
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.text)).toMatchObject({ error: { code: 'MINIPUSH_NOT_FOUND' } });
  });

  it('should hand the publish form the generated dev API key, and no configured key', async () => {
    const configured = await stack({});
    expect((await get(configured, '/demo/dev-api-key')).status).toBe(404);

    // No API keys configured: MiniPush generated one for local use, which the page may have.
    const generated = await stack({ apiKeys: [] });
    const answer = await get(generated, '/demo/dev-api-key');
    expect(answer.status).toBe(200);
    const { apiKey } = JSON.parse(answer.text) as { apiKey: string };
    expect(apiKey).toMatch(/^mp_dev_/);
    const published = await generated.call('POST', '/v1/events', {
      auth: `Bearer ${apiKey}`,
      body: { to: [7], body: { text: 'from the demo' } },
    });
    expect(published.status).toBe(202);

    const noDevTokens = await stack({ apiKeys: [], devTokens: false });
    expect((await get(noDevTokens, '/demo/dev-api-key')).status).toBe(404);
    expect((await get(noDevTokens, '/demo')).status).toBe(200);
  });

  /** A request with the Host and Origin a browser on another name would send. */
  function asPageOn(
    s: Stack,
    method: string,
    path: string,
    headers: Record<string, string>,
  ): Promise<{ status: number; body: any }> {
    const url = new URL(path, s.url);
    return new Promise((resolve, reject) => {
      const request = http.request(
        url,
        { method, headers: { 'content-type': 'application/json', ...headers } },
        (response) => {
          let text = '';
          response.on('data', (chunk: Buffer) => (text += chunk.toString()));
          response.on('end', () =>
            resolve({ status: response.statusCode!, body: JSON.parse(text) }),
          );
        },
      );
      request.on('error', reject);
      request.end(method === 'POST' ? JSON.stringify({ uid: 1 }) : undefined);
    });
  }

  it('should give dev credentials to loopback hosts and origins only (DNS rebinding)', async () => {
    const s = await stack({ apiKeys: [] });
    const port = new URL(s.url).port;
    for (const [method, path] of [
      ['GET', '/demo/dev-api-key'],
      ['POST', '/v1/dev/token'],
    ] as const) {
      // A rebinding page: its own name in Host, though the connection reaches 127.0.0.1.
      const rebound = await asPageOn(s, method, path, { host: `attacker.example:${port}` });
      expect(rebound.status, path).toBe(403);
      expect(rebound.body.error).toEqual({
        code: 'MINIPUSH_FORBIDDEN',
        message: expect.stringContaining(`not Host attacker.example:${port}`),
      });
      const foreign = await asPageOn(s, method, path, {
        host: `127.0.0.1:${port}`,
        origin: 'https://attacker.example',
      });
      expect(foreign.status, path).toBe(403);
      expect(foreign.body.error.message).toContain('not Origin https://attacker.example');
      for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]) {
        const own = await asPageOn(s, method, path, { host, origin: `http://${host}` });
        expect(own.status, `${path} for ${host}`).toBe(200);
      }
    }
  });

  it('should leave /demo out with --demo false and without the hub role', async () => {
    expect((await get(await stack({ demoEnabled: false }), '/demo')).status).toBe(404);
    expect((await get(await stack({}, ['api', 'projector']), '/demo')).status).toBe(404);
  });
});
