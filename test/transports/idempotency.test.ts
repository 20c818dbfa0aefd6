import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/runtime.js';
import { loadPackageDefinition } from '../../src/transports/grpc/server.js';
import { eventually, startPipeline } from '../helpers/pipeline.js';
import { backendConfig, type TestBackend } from '../helpers/services.js';
import { API_KEY, JWT_SECRET } from '../helpers/stack.js';

let nextUid = 120_000;
const freshUid = () => nextUid++;

/**
 * An event id is an idempotency key: the same content again is a retry, other content is a
 * conflict the caller hears of — at once when the id is already projected, from the publish
 * result (or ?wait=true) when both raced into the log.
 */
describe('idempotency conflicts on kafka+mysql', () => {
  let made: TestBackend;
  let api: Runtime;
  let projector: Runtime | null = null;
  let command: grpc.Client & Record<string, any>;
  let query: grpc.Client & Record<string, any>;

  async function call(method: string, path: string, body?: unknown) {
    const res = await fetch(`${api.httpUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${API_KEY}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as any };
  }

  function grpcCall(client: Record<string, any>, method: string, request: unknown): Promise<any> {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${API_KEY}`);
    return new Promise((resolve, reject) =>
      client[method](request, md, (err: grpc.ServiceError | null, res: unknown) =>
        err ? reject(err) : resolve(res),
      ),
    );
  }

  beforeAll(async () => {
    made = await backendConfig('kafka+mysql', {
      roles: ['api'],
      apiKeys: [API_KEY],
      jwtSecret: JWT_SECRET,
    });
    // The API alone first: what it accepts waits in the log until a projector starts.
    api = await startPipeline(made.config);
    const loaded = grpc.loadPackageDefinition(loadPackageDefinition()) as any;
    const address = `127.0.0.1:${api.grpcPort}`;
    command = new loaded.minipush.v1.CommandService(address, grpc.credentials.createInsecure());
    query = new loaded.minipush.v1.QueryService(address, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    command?.close();
    query?.close();
    await projector?.close();
    await api?.close();
    await made?.cleanup();
  });

  it('should tell a conflict that raced its original into the log from the publish result', async () => {
    const uid = freshUid();
    const first = await call('POST', '/v1/events', { id: `race-${uid}`, to: [uid], body: 'one' });
    const second = await call('POST', '/v1/events', { id: `race-${uid}`, to: [uid], body: 'two' });
    expect([first.status, second.status]).toEqual([202, 202]);
    const result = (position: string) =>
      call('GET', `/v1/events/race-${uid}/result?position=${encodeURIComponent(position)}`);
    expect((await result(second.body.position)).body).toEqual({
      id: `race-${uid}`,
      position: second.body.position,
      state: 'pending',
    });

    projector = await startPipeline({ ...made.config, roles: ['projector'] });
    const settled = await eventually(
      () => result(second.body.position),
      (r) => r.body.state !== 'pending',
      30_000,
    );
    expect(settled).toEqual({
      status: 200,
      body: {
        id: `race-${uid}`,
        position: second.body.position,
        state: 'conflict',
        message: `idempotency conflict: event id race-${uid} was published before with another body; the first content stays`,
      },
    });
    expect((await result(first.body.position)).body.state).toBe('applied');
    const grpcResult = await grpcCall(query, 'GetPublishResult', {
      id: `race-${uid}`,
      position: second.body.position,
    });
    expect(grpcResult).toMatchObject({
      state: 'PUBLISH_STATE_CONFLICT',
      message: settled.body.message,
    });
  });

  it('should refuse other content for a projected id at once, waiting or not, on REST and gRPC', async () => {
    const [uid, other] = [freshUid(), freshUid()];
    const id = `known-${uid}`;
    const original = await call('POST', '/v1/events?wait=true', { id, to: [uid], body: { v: 1 } });
    expect(original.status).toBe(200);
    // A retry with the same body is fine, and adds a recipient.
    const retry = await call('POST', '/v1/events?wait=true', {
      id,
      to: [uid, other],
      body: { v: 1 },
    });
    expect(retry).toEqual({ status: 200, body: { id, seqs: { [uid]: 1, [other]: 1 } } });
    for (const wait of ['?wait=true', '']) {
      const changed = await call('POST', `/v1/events${wait}`, { id, to: [uid], body: { v: 2 } });
      expect(changed).toEqual({
        status: 409,
        body: {
          error: {
            code: 'MINIPUSH_IDEMPOTENCY_CONFLICT',
            message: `idempotency conflict: event id ${id} was published before with another body; the first content stays: publish new content under a new id`,
          },
        },
      });
    }
    const err = await grpcCall(command, 'Publish', {
      id,
      to: [uid],
      bodyJson: '{"v":3}',
      wait: false,
    }).catch((e: grpc.ServiceError) => e);
    expect(err.code).toBe(grpc.status.ALREADY_EXISTS);
    expect(err.metadata.get('minipush-error-code')).toEqual(['MINIPUSH_IDEMPOTENCY_CONFLICT']);
  });

  it('should answer 409 to a waiting publish whose id met other content in the log', async () => {
    await projector?.close();
    projector = null;
    const uid = freshUid();
    const id = `lost-${uid}`;
    const appended = async () => (await api.backend.log.endOffsets()).reduce((a, b) => a + b, 0);
    const before = await appended();
    // Neither is projected when the second is checked: only the projector can tell.
    expect((await call('POST', '/v1/events', { id, to: [uid], body: 'one' })).status).toBe(202);
    const waiting = call('POST', '/v1/events?wait=true', { id, to: [uid], body: 'two' });
    await eventually(appended, (n) => n >= before + 2);
    projector = await startPipeline({ ...made.config, roles: ['projector'] });
    expect(await waiting).toEqual({
      status: 409,
      body: {
        error: {
          code: 'MINIPUSH_IDEMPOTENCY_CONFLICT',
          message: `idempotency conflict: event id ${id} was published before with another body; the first content stays`,
        },
      },
    });
  });

  it('should refuse a publish result without a well-formed position', async () => {
    const res = await call('GET', '/v1/events/x/result?position=nope');
    expect(res).toMatchObject({ status: 400, body: { error: { code: 'MINIPUSH_BAD_REQUEST' } } });
  });
});
