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
import { connect, type TestSocket } from '../helpers/ws-client.js';

let nextUid = 120_000;
const freshUid = () => nextUid++;

/** Two hub processes and a projector process sharing one Kafka and one MariaDB. */
describe('hubs in a cluster (separate processes, Kafka + MariaDB)', () => {
  let hubA: MiniPushProcess;
  let hubB: MiniPushProcess;
  let projector: MiniPushProcess;
  let cleanup: () => Promise<void>;
  const sockets: TestSocket[] = [];

  const ws = (hub: MiniPushProcess) => `${hub.url!.replace('http', 'ws')}/v1/ws`;

  async function session(hub: MiniPushProcess, uid: number): Promise<TestSocket> {
    const socket = await connect(ws(hub), { token: await signUserToken(uid) });
    sockets.push(socket);
    await socket.next((m) => m.type === 'hello');
    return socket;
  }

  const publish = (hub: MiniPushProcess, to: number[]) => publishOver(hub.url!, to);

  beforeAll(async () => {
    let env: Record<string, string>;
    ({ env, cleanup } = await preparedDeployment({
      sessionQuota: 5,
      hubHeartbeatMs: 200,
      hubTimeoutMs: 1500,
      nudgeWindowMs: 20,
      grpcPort: -1,
    }));
    [projector, hubA, hubB] = await Promise.all([
      spawnMiniPush({ ...env, MINIPUSH_ROLES: 'projector' }),
      spawnMiniPush({ ...env, MINIPUSH_ROLES: 'api,hub' }),
      spawnMiniPush({ ...env, MINIPUSH_ROLES: 'api,hub' }),
    ]);
  });

  afterAll(async () => {
    await Promise.all(sockets.map((s) => s.close().catch(() => undefined)));
    await killAll();
    await cleanup?.();
  });

  it('should nudge the recipient’s sessions on both hubs and nobody else', async () => {
    const [uid, other] = [freshUid(), freshUid()];
    const onA = await session(hubA, uid);
    const onB = await session(hubB, uid);
    const bystanders = [await session(hubA, other), await session(hubB, other)];
    await publish(hubA, [uid]);
    for (const tab of [onA, onB]) {
      expect(await tab.next((m) => m.type === 'head', 20_000)).toMatchObject({
        headSeq: 1,
        unreadCount: 1,
      });
    }
    await new Promise((r) => setTimeout(r, 300));
    for (const b of bystanders) expect(b.messages.filter((m) => m.type === 'head')).toEqual([]);
  });

  it('should kick the oldest session even when it lives on the other hub', async () => {
    const uid = freshUid();
    const oldest = await session(hubA, uid);
    await new Promise((r) => setTimeout(r, 100));
    const others: TestSocket[] = [];
    for (let i = 0; i < 4; i++) others.push(await session(i % 2 === 0 ? hubB : hubA, uid));
    await new Promise((r) => setTimeout(r, 300));
    expect(oldest.ws.readyState).toBe(WebSocket.OPEN);
    const sixth = await session(hubB, uid);
    expect(await oldest.next((m) => m.type === 'kickoff', 20_000)).toMatchObject({
      type: 'kickoff',
    });
    expect((await oldest.closed).code).toBe(CLOSE_CODES.kickedOff);
    await new Promise((r) => setTimeout(r, 300));
    for (const s of [...others, sixth]) expect(s.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('should stop counting a killed hub’s sessions within the hub timeout', async () => {
    const uid = freshUid();
    const doomed = [await session(hubA, uid), await session(hubA, uid), await session(hubA, uid)];
    const survivors = [await session(hubB, uid), await session(hubB, uid)];
    await new Promise((r) => setTimeout(r, 300));
    await hubA.kill('SIGKILL');
    for (const s of doomed) expect((await s.closed).code).toBe(1006);
    // Past the timeout the dead hub's three sessions are forgotten: three new ones fit the quota.
    await new Promise((r) => setTimeout(r, 1500 + 1000));
    for (let i = 0; i < 3; i++) survivors.push(await session(hubB, uid));
    await new Promise((r) => setTimeout(r, 1000));
    for (const s of survivors) {
      expect(s.messages.filter((m) => m.type === 'kickoff')).toEqual([]);
      expect(s.ws.readyState).toBe(WebSocket.OPEN);
    }
    // And the quota still holds among the living: one more kicks the oldest survivor.
    await session(hubB, uid);
    expect(await survivors[0]!.next((m) => m.type === 'kickoff', 20_000)).toBeTruthy();
    void projector;
  });
});
