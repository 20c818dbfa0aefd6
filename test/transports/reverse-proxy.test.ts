import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { codeBlocks, readDoc } from '../helpers/markdown.js';
import { eventually } from '../helpers/pipeline.js';
import { freePort, tempDir } from '../helpers/services.js';
import { API_KEY, signUserToken, startStack, type Stack } from '../helpers/stack.js';
import { connect, type TestSocket } from '../helpers/ws-client.js';

const run = promisify(execFile);

/**
 * docs/reverse-proxy.md's nginx configuration, as the page prints it, for one upstream: only
 * the addresses, the certificate paths and the upstream's name change.
 */
function proxyConfig(name: string, upstream: string, port: number, dir: string): string {
  const [config] = codeBlocks(readDoc('reverse-proxy.md'), 'nginx');
  return config!
    .replace(/upstream minipush \{/, `upstream ${name} {`)
    .replaceAll('http://minipush;', `http://${name};`)
    .replace('server 127.0.0.1:8080;', `server ${upstream};`)
    .replace('$minipush_connection', `$${name}_connection`)
    .replaceAll('$minipush_connection', `$${name}_connection`)
    .replace('listen 443 ssl;', `listen 127.0.0.1:${port} ssl;`)
    .replace('/etc/ssl/minipush/cert.pem', path.join(dir, 'cert.pem'))
    .replace('/etc/ssl/minipush/key.pem', path.join(dir, 'key.pem'));
}

function get(url: string, headers: Record<string, string>): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { headers, rejectUnauthorized: false }, (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
      })
      .on('error', reject);
  });
}

/**
 * MiniPush behind Debian's nginx terminating TLS, as docs/reverse-proxy.md sets it up: one
 * hub trusting the proxy's X-Forwarded-For, one not. The per-IP limit (2 here) must count
 * clients, not the proxy.
 */
describe('behind nginx (TLS, WebSocket upgrade, X-Forwarded-For)', () => {
  let trusting: Stack;
  let naive: Stack;
  let nginx: ChildProcess;
  let dir: string;
  const ports = { trusting: 0, naive: 0 };
  const sockets: TestSocket[] = [];

  beforeAll(async () => {
    const limits = { maxConnectionsPerIp: 2 };
    trusting = await startStack('embedded', { ...limits, trustProxy: ['127.0.0.1'] }, [
      'api',
      'hub',
      'projector',
    ]);
    naive = await startStack('embedded', limits, ['api', 'hub', 'projector']);
    dir = tempDir('minipush-nginx-');
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-keyout',
      path.join(dir, 'key.pem'),
      '-out',
      path.join(dir, 'cert.pem'),
    ]);
    ports.trusting = await freePort();
    ports.naive = await freePort();
    const temp = (name: string) => path.join(dir, name);
    fs.writeFileSync(
      temp('nginx.conf'),
      [
        'daemon off;',
        'master_process on;',
        'worker_processes 1;',
        `pid ${temp('nginx.pid')};`,
        `error_log ${temp('error.log')} warn;`,
        'events { worker_connections 256; }',
        'http {',
        '  access_log off;',
        ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(
          (kind) => `  ${kind}_temp_path ${temp(kind)};`,
        ),
        proxyConfig('trusting', new URL(trusting.url).host, ports.trusting, dir),
        proxyConfig('naive', new URL(naive.url).host, ports.naive, dir),
        '}',
      ].join('\n'),
    );
    nginx = spawn(inject('nginx'), ['-c', temp('nginx.conf'), '-p', dir], { stdio: 'inherit' });
    await eventually(
      () =>
        get(`https://127.0.0.1:${ports.trusting}/healthz`, {}).then(
          (r) => r.status,
          () => 0,
        ),
      (status) => status === 200,
    );
  });

  afterAll(async () => {
    for (const socket of sockets) await socket.close().catch(() => undefined);
    if (nginx && nginx.exitCode === null) {
      const exited = new Promise((resolve) => nginx.once('exit', resolve));
      nginx.kill('SIGTERM');
      await exited;
    }
    await trusting?.close();
    await naive?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function session(port: number, uid: number, from: string): Promise<TestSocket> {
    const socket = await connect(`wss://localhost:${port}/v1/ws`, {
      token: await signUserToken(uid),
      localAddress: from,
      rejectUnauthorized: false,
    });
    sockets.push(socket);
    await socket.next((m) => m.type === 'hello');
    return socket;
  }

  it('should serve REST and upgrade /v1/ws through the TLS proxy', async () => {
    const stats = await get(`https://127.0.0.1:${ports.trusting}/v1/users/1/stats`, {
      authorization: `Bearer ${API_KEY}`,
    });
    expect(stats).toMatchObject({ status: 200, body: { headSeq: 0 } });
    const socket = await session(ports.trusting, 5, '127.0.0.5');
    expect((await socket.request('stats')).type).toBe('stats');
  });

  it('should count each client behind the trusted proxy against the per-IP limit, not the proxy', async () => {
    // Two clients at the limit each, and a third from one of them is refused.
    await session(ports.trusting, 11, '127.0.0.2');
    await session(ports.trusting, 12, '127.0.0.2');
    await session(ports.trusting, 13, '127.0.0.3');
    await session(ports.trusting, 14, '127.0.0.3');
    await expect(session(ports.trusting, 15, '127.0.0.2')).rejects.toMatchObject({ status: 429 });
    // A client's own X-Forwarded-For does not buy it another address.
    await expect(
      connect(`wss://localhost:${ports.trusting}/v1/ws`, {
        token: await signUserToken(16),
        localAddress: '127.0.0.2',
        rejectUnauthorized: false,
        headers: { 'x-forwarded-for': '10.9.8.7' },
      }),
    ).rejects.toMatchObject({ status: 429 });
  });

  it('should see only the proxy without MINIPUSH_TRUST_PROXY, so two clients fill the limit', async () => {
    await session(ports.naive, 21, '127.0.0.6');
    await session(ports.naive, 22, '127.0.0.7');
    await expect(session(ports.naive, 23, '127.0.0.8')).rejects.toMatchObject({ status: 429 });
  });
});
