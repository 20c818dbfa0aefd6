import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { killAll, spawnMiniPush } from '../helpers/processes.js';
import { tempDir } from '../helpers/services.js';
import { connect } from '../helpers/ws-client.js';

interface DevCredentials {
  apiKey: string;
}

async function json(url: string, init: RequestInit & { auth?: string } = {}) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (init.auth) headers.authorization = `Bearer ${init.auth}`;
  const res = await fetch(url, { ...init, headers });
  return { status: res.status, body: (await res.json()) as any };
}

/** The zero-setup default: `minipush serve` with no Kafka and no MySQL, as README's run command. */
describe('embedded default (one process, no services)', () => {
  const dataDir = tempDir();

  afterAll(async () => {
    await killAll();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('should start with no other process and round-trip publish → nudge → diff → mark read', async () => {
    const server = await spawnMiniPush({
      MINIPUSH_DATA_DIR: dataDir,
      MINIPUSH_HTTP_PORT: '0',
      MINIPUSH_GRPC_PORT: '0',
    });
    try {
      expect(fs.existsSync(path.join(dataDir, 'minipush.db'))).toBe(true);
      expect(fs.existsSync(path.join(dataDir, 'log.db'))).toBe(true);
      const { apiKey } = JSON.parse(
        fs.readFileSync(path.join(dataDir, 'dev-credentials.json'), 'utf8'),
      ) as DevCredentials;
      const url = server.url!;
      const minted = await json(`${url}/v1/dev/token`, {
        method: 'POST',
        body: JSON.stringify({ uid: 1 }),
      });
      expect(minted.status).toBe(200);
      const socket = await connect(`${url.replace('http', 'ws')}/v1/ws`, {
        token: minted.body.token,
      });
      await socket.next((m) => m.type === 'hello');
      const published = await json(`${url}/v1/events`, {
        method: 'POST',
        auth: apiKey,
        body: JSON.stringify({ to: [1], body: { text: 'hello' } }),
      });
      expect(published.status).toBe(202);
      expect(await socket.next((m) => m.type === 'head')).toMatchObject({
        headSeq: 1,
        unreadCount: 1,
      });
      const diff = await json(`${url}/v1/users/1/events?after=0`, { auth: minted.body.token });
      expect(diff.body.events).toEqual([
        {
          seq: 1,
          createTime: expect.any(Number),
          body: { text: 'hello' },
          read: false,
          seen: false,
          archived: false,
        },
      ]);
      const read = await socket.request('markRead', { seqs: [1] });
      expect(read.changed).toBe(1);
      expect(await socket.next((m) => m.type === 'head' && m.readVersion === 1)).toMatchObject({
        unreadCount: 0,
      });
      await socket.close();
    } finally {
      expect(await server.kill('SIGTERM')).toEqual({ code: 0, signal: null });
    }
  });

  it('should lose no accepted command when killed with SIGKILL and started again', async () => {
    const env = { MINIPUSH_DATA_DIR: dataDir, MINIPUSH_HTTP_PORT: '0', MINIPUSH_GRPC_PORT: '-1' };
    const first = await spawnMiniPush(env);
    const { apiKey } = JSON.parse(
      fs.readFileSync(path.join(dataDir, 'dev-credentials.json'), 'utf8'),
    ) as DevCredentials;
    const accepted: string[] = [];
    // Publish as fast as answers come back, and kill the process while commands are in flight.
    let stop = false;
    const publisher = (async () => {
      for (let i = 0; !stop && i < 5000; i++) {
        const id = `kill-${i}`;
        try {
          const res = await json(`${first.url}/v1/events`, {
            method: 'POST',
            auth: apiKey,
            body: JSON.stringify({ id, to: [1000 + (i % 7)], body: { i } }),
          });
          if (res.status === 202) accepted.push(id);
        } catch {
          return;
        }
      }
    })();
    await new Promise((r) => setTimeout(r, 1500));
    expect(await first.kill('SIGKILL')).toMatchObject({ signal: 'SIGKILL' });
    stop = true;
    await publisher;
    expect(accepted.length).toBeGreaterThan(50);

    const second = await spawnMiniPush(env);
    try {
      const seen = new Set<string>();
      for (let uid = 1000; uid < 1007; uid++) {
        const res = await json(`${second.url}/v1/events`, {
          method: 'POST',
          auth: apiKey,
          body: JSON.stringify({ id: `after-${uid}`, to: [uid], body: 'after restart' }),
        });
        expect(res.status).toBe(202);
      }
      for (let uid = 1000; uid < 1007; uid++) {
        await expect
          .poll(
            async () => {
              const page = await json(`${second.url}/v1/users/${uid}/events?after=0&limit=1000`, {
                auth: apiKey,
              });
              return page.body.events.at(-1)?.body;
            },
            { timeout: 30_000 },
          )
          .toBe('after restart');
        const page = await json(`${second.url}/v1/users/${uid}/events?after=0&limit=1000`, {
          auth: apiKey,
        });
        const seqs = page.body.events.map((e: { seq: number }) => e.seq);
        expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
        for (const event of page.body.events)
          if (typeof event.body === 'object') seen.add(`kill-${event.body.i}`);
      }
      for (const id of accepted)
        expect(seen.has(id), `${id} was accepted but is missing`).toBe(true);
    } finally {
      await second.kill('SIGTERM');
    }
  });
});
