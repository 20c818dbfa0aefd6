import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPackageDefinition } from '../../src/transports/grpc/server.js';
import type { Runtime } from '../../src/runtime.js';
import { eventually, startPipeline } from '../helpers/pipeline.js';
import { backendConfig, type TestBackend } from '../helpers/services.js';
import { API_KEY, JWT_SECRET, signUserToken } from '../helpers/stack.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { connect, type TestSocket } from '../helpers/ws-client.js';

type Client = grpc.Client &
  Record<string, (req: unknown, md: grpc.Metadata, cb: grpc.requestCallback<any>) => void>;

const UID = 31_337;

/**
 * A store outage is the same retryable error on every transport: REST 503, gRPC UNAVAILABLE
 * and a WebSocket error, all with code MINIPUSH_UNAVAILABLE.
 */
describe('a store outage on kafka+mysql', () => {
  let made: TestBackend;
  let proxy: TcpProxy;
  let runtime: Runtime;
  let query: Client;
  let socket: TestSocket;

  beforeAll(async () => {
    made = await backendConfig('kafka+mysql', {
      roles: ['api', 'hub', 'projector'],
      apiKeys: [API_KEY],
      jwtSecret: JWT_SECRET,
    });
    const direct = new URL(made.config.mysqlUrl);
    proxy = await startTcpProxy({ host: direct.hostname, port: Number(direct.port) });
    const viaProxy = new URL(direct);
    viaProxy.port = String(proxy.port);
    runtime = await startPipeline({ ...made.config, mysqlUrl: viaProxy.toString() });
    const loaded = grpc.loadPackageDefinition(loadPackageDefinition()) as any;
    query = new loaded.minipush.v1.QueryService(
      `127.0.0.1:${runtime.grpcPort}`,
      grpc.credentials.createInsecure(),
    );
    const published = await fetch(`${runtime.httpUrl}/v1/events?wait=true`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ to: [UID], body: { n: 1 } }),
    });
    expect(published.status).toBe(200);
    const ws = runtime.httpUrl.replace(/^http/, 'ws');
    socket = await connect(`${ws}/v1/ws`, { token: await signUserToken(UID) });
    await socket.next((m) => m.type === 'hello');
    await proxy.cut();
  });

  afterAll(async () => {
    await socket?.close();
    query?.close();
    await proxy?.restore();
    await runtime?.close();
    await proxy?.close();
    await made?.cleanup();
  });

  it('should answer a REST diff with 503 MINIPUSH_UNAVAILABLE', async () => {
    const response = await fetch(`${runtime.httpUrl}/v1/users/${UID}/events?after=0`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(response.status).toBe(503);
    const body = (await response.json()) as any;
    expect(body.error.code).toBe('MINIPUSH_UNAVAILABLE');
    expect(body.error.message).toMatch(/retry/);
  });

  it('should answer a gRPC Diff with UNAVAILABLE and code MINIPUSH_UNAVAILABLE', async () => {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${API_KEY}`);
    const err = await new Promise<grpc.ServiceError>((resolve, reject) => {
      query.Diff!({ uid: UID, after: 0 }, md, (e: grpc.ServiceError | null) =>
        e ? resolve(e) : reject(new Error('Diff succeeded during the outage')),
      );
    });
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.metadata.get('minipush-error-code')).toEqual(['MINIPUSH_UNAVAILABLE']);
  });

  it('should answer a WebSocket diff with error MINIPUSH_UNAVAILABLE', async () => {
    const answer = await socket.request('diff', { after: 0 });
    expect(answer).toMatchObject({ type: 'error', code: 'MINIPUSH_UNAVAILABLE' });
  });

  it('should serve again once the store is back', async () => {
    await proxy.restore();
    const status = await eventually(
      async () =>
        (
          await fetch(`${runtime.httpUrl}/v1/users/${UID}/events?after=0`, {
            headers: { authorization: `Bearer ${API_KEY}` },
          })
        ).status,
      (s) => s === 200,
      30_000,
    );
    expect(status).toBe(200);
  });
});
