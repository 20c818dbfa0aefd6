import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';
import { afterAll, describe, expect, it } from 'vitest';
import { FD_HEADROOM } from '../../src/hubs/fd-limit.js';
import { killAll, spawnMiniPush } from '../helpers/processes.js';
import { tempDir } from '../helpers/services.js';
import { signUserToken } from '../helpers/stack.js';
import { connect, type TestSocket } from '../helpers/ws-client.js';

const LIMIT = 400;

describe('a hub at its open-file limit', () => {
  const dataDir = tempDir();
  const sockets: TestSocket[] = [];
  const raw: net.Socket[] = [];

  afterAll(async () => {
    for (const s of raw) s.destroy();
    await Promise.all(sockets.map((s) => s.close().catch(() => undefined)));
    await killAll();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('should refuse further connections cleanly and keep serving the ones it holds', async () => {
    const server = await spawnMiniPush(
      {
        MINIPUSH_DATA_DIR: dataDir,
        MINIPUSH_HTTP_PORT: '0',
        MINIPUSH_GRPC_PORT: '-1',
        MINIPUSH_MAX_CONNECTIONS_PER_IP: '0',
        MINIPUSH_JWT_SECRET: 'emfile-secret-emfile-secret-emfile-1',
      },
      ['serve'],
      60_000,
      { openFileLimit: LIMIT },
    );
    expect(server.logs.some((l) => l.msg?.toString().startsWith('the open-file limit caps'))).toBe(
      true,
    );
    const url = `${server.url!.replace('http', 'ws')}/v1/ws`;
    const secret = 'emfile-secret-emfile-secret-emfile-1';
    let refused: { status?: number; body?: string } | null = null;
    for (let uid = 1; uid <= LIMIT; uid++) {
      try {
        const socket = await connect(url, { token: await signUserToken(uid, { secret }) });
        sockets.push(socket);
        await socket.next((m) => m.type === 'hello');
      } catch (err) {
        refused = err as { status?: number; body?: string };
        break;
      }
    }
    expect(sockets.length).toBe(LIMIT - FD_HEADROOM);
    expect(refused?.status).toBe(503);
    expect(refused?.body).toContain('MINIPUSH_UNAVAILABLE');

    // Push the process past its limit with bare TCP connections: it must not crash.
    const port = Number(new URL(server.url!).port);
    for (let i = 0; i < LIMIT; i++) {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      raw.push(socket);
    }
    await new Promise((r) => setTimeout(r, 1000));
    expect(server.child.exitCode).toBeNull();
    for (const s of raw.splice(0)) s.destroy();
    await new Promise((r) => setTimeout(r, 500));

    // The sessions it held are still served: a publish nudges them.
    const { apiKey } = JSON.parse(
      fs.readFileSync(path.join(dataDir, 'dev-credentials.json'), 'utf8'),
    ) as { apiKey: string };
    const res = await fetch(`${server.url}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ to: [1, 2, 3], body: 'still here' }),
    });
    expect(res.status).toBe(202);
    for (const socket of sockets.slice(0, 3)) {
      expect(await socket.next((m) => m.type === 'head')).toMatchObject({ headSeq: 1 });
    }
    expect(sockets.every((s) => s.ws.readyState === WebSocket.OPEN)).toBe(true);

    // Room frees up as sessions leave.
    await sockets.pop()!.close();
    await new Promise((r) => setTimeout(r, 200));
    const again = await connect(url, { token: await signUserToken(9999, { secret }) });
    sockets.push(again);
    await again.next((m) => m.type === 'hello');
    expect(await server.kill('SIGTERM')).toEqual({ code: 0, signal: null });
  });
});
