import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLOSE_CODES } from '../../src/protocol/websocket.js';
import {
  killAll,
  preparedDeployment,
  publishOver,
  spawnMiniPush,
  type MiniPushProcess,
} from '../helpers/processes.js';
import { signUserToken } from '../helpers/stack.js';
import { openStream, type TestStream } from '../helpers/sse-client.js';
import { connect, type TestSocket } from '../helpers/ws-client.js';

let nextUid = 140_000;
const freshUid = () => nextUid++;

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Resolves once `condition` holds, checking every 50 ms. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((r) => setTimeout(r, 50));
}

/** One hub deployment of two worker processes behind one port, and a projector + api process. */
describe('hub workers (MINIPUSH_HUB_WORKERS=2, Kafka + MariaDB)', () => {
  let hub: MiniPushProcess;
  let api: MiniPushProcess;
  let cleanup: () => Promise<void>;
  let env: Record<string, string>;
  const sockets: TestSocket[] = [];
  const streams: TestStream[] = [];

  /** An SSE session and the id of the worker that greeted it. */
  async function stream(uid: number): Promise<{ stream: TestStream; hubId: string }> {
    const s = await openStream(`${hub.url!}/v1/sse`, { bearer: await signUserToken(uid) });
    streams.push(s);
    expect(s.status).toBe(200);
    const hello = (await s.next((m) => m.type === 'hello')) as { hubId: string };
    return { stream: s, hubId: hello.hubId };
  }

  /** A session and the id of the hub (worker) that greeted it. */
  async function session(uid: number): Promise<{ socket: TestSocket; hubId: string }> {
    const socket = await connect(`${hub.url!.replace('http', 'ws')}/v1/ws`, {
      token: await signUserToken(uid),
    });
    sockets.push(socket);
    const hello = (await socket.next((m) => m.type === 'hello')) as { hubId: string };
    return { socket, hubId: hello.hubId };
  }

  const publish = (to: number[]) => publishOver(api.url!, to);

  beforeAll(async () => {
    ({ env, cleanup } = await preparedDeployment({
      sessionQuota: 5,
      nudgeWindowMs: 20,
      grpcPort: -1,
    }));
    [api, hub] = await Promise.all([
      spawnMiniPush({ ...env, MINIPUSH_ROLES: 'api,projector' }),
      spawnMiniPush({ ...env, MINIPUSH_ROLES: 'hub', MINIPUSH_HUB_WORKERS: '2' }),
    ]);
  });

  afterAll(async () => {
    await Promise.all(sockets.map((s) => s.close().catch(() => undefined)));
    await Promise.all(streams.map((s) => s.close().catch(() => undefined)));
    await killAll();
    await cleanup?.();
  });

  it('should accept sessions in both workers and nudge the sessions in either', async () => {
    const uid = freshUid();
    const tabs: Array<{ socket: TestSocket; hubId: string }> = [];
    // Round-robin hands connections to the workers in turn; stop once both have greeted one.
    while (new Set(tabs.map((t) => t.hubId)).size < 2 && tabs.length < 5)
      tabs.push(await session(uid));
    expect(new Set(tabs.map((t) => t.hubId)).size).toBe(2);
    await publish([uid]);
    for (const { socket } of tabs) {
      expect(await socket.next((m) => m.type === 'head', 20_000)).toMatchObject({
        headSeq: 1,
        unreadCount: 1,
      });
    }
  });

  it('should keep the per-user session quota across workers', async () => {
    const uid = freshUid();
    const tabs: Array<{ socket: TestSocket; hubId: string }> = [];
    for (let i = 0; i < 5; i++) tabs.push(await session(uid));
    // Neither worker alone holds more than the quota: only counting both kicks anyone.
    expect(new Set(tabs.map((t) => t.hubId)).size).toBe(2);
    const sixth = await session(uid);
    const oldest = tabs[0]!.socket;
    expect(await oldest.next((m) => m.type === 'kickoff', 20_000)).toMatchObject({
      type: 'kickoff',
    });
    expect((await oldest.closed).code).toBe(CLOSE_CODES.kickedOff);
    // The five that stay still hear heads and were never kicked.
    await publish([uid]);
    for (const { socket } of [...tabs.slice(1), sixth]) {
      await socket.next((m) => m.type === 'head', 20_000);
      expect(socket.messages.filter((m) => m.type === 'kickoff')).toEqual([]);
      expect(socket.ws.readyState).toBe(WebSocket.OPEN);
    }
  });

  it('should serve SSE streams in both workers, sharing the quota with WebSockets', async () => {
    const uid = freshUid();
    // Oldest first: SSE streams until both workers have one (round-robin: two or three).
    const sse: Array<{ stream: TestStream; hubId: string }> = [];
    while (new Set(sse.map((t) => t.hubId)).size < 2 && sse.length < 4) sse.push(await stream(uid));
    expect(new Set(sse.map((t) => t.hubId)).size).toBe(2);
    await publish([uid]);
    for (const { stream: s } of sse) {
      expect(await s.next((m) => m.type === 'head', 20_000)).toMatchObject({ headSeq: 1 });
    }
    // WebSockets up to the quota and one more: the oldest stream is kicked, on whichever worker
    const ws: TestSocket[] = [];
    while (sse.length + ws.length < 6) ws.push((await session(uid)).socket);
    const oldest = sse[0]!.stream;
    expect(await oldest.next((m) => m.type === 'kickoff', 20_000)).toMatchObject({
      type: 'kickoff',
    });
    expect(await oldest.next((m) => m.type === 'close', 20_000)).toMatchObject({
      code: CLOSE_CODES.kickedOff,
    });
    await oldest.ended;
    for (const { stream: s } of sse.slice(1)) {
      expect(s.messages.filter((m) => m.type === 'kickoff')).toEqual([]);
    }
  });

  it('should take its workers with it when the first process is killed outright', async () => {
    const doomed = await spawnMiniPush({
      ...env,
      MINIPUSH_ROLES: 'hub',
      MINIPUSH_HUB_WORKERS: '2',
    });
    const pids = doomed.logs.find((l) => l.msg === 'minipush is running')?.workers as number[];
    expect(pids).toHaveLength(2);
    await doomed.kill('SIGKILL');
    // Each worker exits when its channel to the first process closes.
    await until(() => pids.every((pid) => !isRunning(pid)));
  });

  it('should stop every worker when the hub stops, closing sessions with 1012', async () => {
    const running = hub.logs.find((l) => l.msg === 'minipush is running');
    const pids = running?.workers as number[];
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect(isRunning(pid)).toBe(true);
    const uid = freshUid();
    const tabs = [await session(uid), await session(uid)];
    const sse = [await stream(uid), await stream(uid)];
    const exit = await hub.kill('SIGTERM');
    expect(exit.code).toBe(0);
    for (const { socket } of tabs)
      expect((await socket.closed).code).toBe(CLOSE_CODES.serviceRestart);
    for (const { stream: s } of sse) {
      expect(await s.next((m) => m.type === 'close')).toMatchObject({
        code: CLOSE_CODES.serviceRestart,
      });
    }
    // The primary exits only after every worker has.
    for (const pid of pids) expect(isRunning(pid)).toBe(false);
  });
});
