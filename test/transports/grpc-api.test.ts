import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { decodeBitmap } from '../../src/domain/read-bitmap.js';
import { decodeReadBlock } from '../../src/domain/read-blocks.js';
import { decodeCompact } from '../../src/domain/read-compact.js';
import { loadPackageDefinition, protoRoot, PROTO_FILE } from '../../src/transports/grpc/server.js';
import { API_KEY, signUserToken, startStack, type Stack } from '../helpers/stack.js';

const run = promisify(execFile);

type Client = grpc.Client &
  Record<string, (req: unknown, md: grpc.Metadata, cb: grpc.requestCallback<any>) => void>;

let nextUid = 70_000;
const freshUid = () => nextUid++;

describe('gRPC API on kafka+mysql', () => {
  let stack: Stack;
  let query: Client;
  let command: Client;
  let address: string;

  beforeAll(async () => {
    stack = await startStack('kafka+mysql', { maxLimit: 200 });
    address = `127.0.0.1:${stack.runtime.grpcPort}`;
    const loaded = grpc.loadPackageDefinition(loadPackageDefinition()) as any;
    query = new loaded.minipush.v1.QueryService(address, grpc.credentials.createInsecure());
    command = new loaded.minipush.v1.CommandService(address, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    query?.close();
    command?.close();
    await stack?.close();
  });

  function metadata(token: string | null = API_KEY): grpc.Metadata {
    const md = new grpc.Metadata();
    if (token !== null) md.set('authorization', `Bearer ${token}`);
    return md;
  }

  function call<T = any>(
    client: Client,
    method: string,
    request: unknown,
    token: string | null = API_KEY,
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      client[method]!(request, metadata(token), (err: grpc.ServiceError | null, res: T) =>
        err ? reject(err) : resolve(res),
      );
    });
  }

  async function callError(
    client: Client,
    method: string,
    request: unknown,
    token: string | null = API_KEY,
  ) {
    try {
      await call(client, method, request, token);
    } catch (err) {
      const e = err as grpc.ServiceError;
      return {
        code: e.code,
        details: e.details,
        minipush: e.metadata.get('minipush-error-code')[0],
      };
    }
    throw new Error(`${method} did not fail`);
  }

  it('Publish with wait should answer seqs, and queries should read the feed', async () => {
    const uid = freshUid();
    for (let i = 1; i <= 4; i++) {
      const res = await call(command, 'Publish', {
        id: `g${i}-${uid}`,
        to: [uid],
        bodyJson: JSON.stringify({ n: i }),
        wait: true,
      });
      expect(res).toMatchObject({ id: `g${i}-${uid}`, seqs: [{ uid, seq: i }] });
    }
    const accepted = await call(command, 'Publish', { to: [uid], bodyJson: '"five"' });
    expect(accepted.position).toMatch(/^\d+:\d+$/);
    expect(accepted.id).toMatch(/^[0-9a-f-]{36}$/);
    await expect
      .poll(async () => (await call(query, 'GetStats', { uid })).headSeq, { timeout: 20_000 })
      .toBe(5);

    const diff = await call(query, 'Diff', { uid, after: 2, limit: 2 });
    expect(diff).toMatchObject({ headSeq: 5, floorSeq: 1, more: true, reset: false });
    expect(diff.events.map((e: any) => [e.seq, JSON.parse(e.bodyJson), e.read])).toEqual([
      [3, { n: 3 }, false],
      [4, { n: 4 }, false],
    ]);
    const fetched = await call(query, 'Fetch', { uid, from: 2, to: 4, order: 'ORDER_DESC' });
    expect(fetched.events.map((e: any) => e.seq)).toEqual([4, 3, 2]);
    const asc = await call(query, 'Fetch', { uid, from: 2, to: 4, order: 'ORDER_ASC', limit: 1 });
    expect(asc.events.map((e: any) => e.seq)).toEqual([2]);
    expect(asc.more).toBe(true);
  });

  it('MarkRead, MarkUnread and GetReadStates should agree with the REST semantics', async () => {
    const uid = freshUid();
    for (let i = 1; i <= 6; i++)
      await call(command, 'Publish', { to: [uid], bodyJson: String(i), wait: true });
    const user = await signUserToken(uid);
    expect(
      await call(command, 'MarkRead', { uid, seqs: [1, 2, 6], wait: true }, user),
    ).toMatchObject({ changed: 3 });
    expect(await call(command, 'MarkRead', { uid, upTo: 3, wait: true }, user)).toMatchObject({
      changed: 1,
    });
    expect(await call(command, 'MarkUnread', { uid, seqs: [2], wait: true }, user)).toMatchObject({
      changed: 1,
    });
    const noWait = await call(command, 'MarkRead', { uid, seqs: [4] }, user);
    expect(noWait.position).toMatch(/^\d+:\d+$/);
    await expect
      .poll(async () => (await call(query, 'GetStats', { uid }, user)).unreadCount, {
        timeout: 20_000,
      })
      .toBe(2);
    const roaring = await call(query, 'GetReadStates', { uid }, user);
    expect(decodeBitmap(roaring.roaring).toArray()).toEqual([1, 3, 4, 6]);
    const blocks = await call(
      query,
      'GetReadStates',
      { uid, format: 'READ_STATES_FORMAT_BLOCKS', upTo: 5 },
      user,
    );
    expect(blocks.blocks).toHaveLength(1);
    const [block] = blocks.blocks;
    expect(
      decodeReadBlock({
        seq: block.seq,
        len: block.len,
        base64: Buffer.from(block.bits).toString('base64'),
      }),
    ).toEqual([1, 3, 4]);
    const compact = await call(
      query,
      'GetReadStates',
      { uid, format: 'READ_STATES_FORMAT_COMPACT' },
      user,
    );
    expect(compact.roaring).toHaveLength(0);
    expect(decodeCompact(compact.compact, compact.floorSeq, compact.headSeq)).toEqual([1, 3, 4, 6]);
  });

  it('should map auth failures and bad arguments to gRPC status codes with the MiniPush code', async () => {
    const [mine, other] = [freshUid(), freshUid()];
    const user = await signUserToken(mine);
    expect(await callError(query, 'GetStats', { uid: mine }, null)).toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
      minipush: 'MINIPUSH_UNAUTHENTICATED',
    });
    expect(await callError(query, 'GetStats', { uid: mine }, 'nope')).toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
    });
    expect(await callError(query, 'Diff', { uid: other }, user)).toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      minipush: 'MINIPUSH_FORBIDDEN',
      details: `a user token for uid ${mine} cannot access uid ${other}`,
    });
    expect(await callError(command, 'Publish', { to: [mine], bodyJson: '1' }, user)).toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
    });
    expect(await callError(query, 'Diff', { uid: mine, limit: 201 })).toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      minipush: 'MINIPUSH_LIMIT_TOO_LARGE',
      details: 'limit 201 is over the maximum of 200',
    });
    expect(await callError(query, 'Fetch', { uid: mine, from: 5, to: 2 })).toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      minipush: 'MINIPUSH_INVALID_RANGE',
    });
    expect(await callError(command, 'Publish', { to: [mine], bodyJson: '{oops' })).toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      minipush: 'MINIPUSH_INVALID_EVENT',
    });
    expect(await callError(command, 'Publish', { to: [], bodyJson: '1' })).toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      minipush: 'MINIPUSH_INVALID_UID',
    });
    expect(
      await callError(command, 'Publish', {
        to: [mine],
        bodyJson: JSON.stringify('x'.repeat(5000)),
      }),
    ).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, minipush: 'MINIPUSH_BODY_TOO_LARGE' });
    expect(await callError(command, 'MarkRead', { uid: mine }, user)).toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      minipush: 'MINIPUSH_BAD_REQUEST',
    });
  });

  it('should answer grpcurl through server reflection', async () => {
    const grpcurl = inject('grpcurl');
    const { stdout: services } = await run(grpcurl, ['-plaintext', address, 'list']);
    expect(services.split('\n')).toEqual(
      expect.arrayContaining(['minipush.v1.CommandService', 'minipush.v1.QueryService']),
    );
    const uid = freshUid();
    const { stdout: published } = await run(grpcurl, [
      '-plaintext',
      '-H',
      `authorization: Bearer ${API_KEY}`,
      '-d',
      JSON.stringify({ to: [uid], bodyJson: '{"via":"grpcurl"}', wait: true }),
      address,
      'minipush.v1.CommandService/Publish',
    ]);
    expect(JSON.parse(published)).toMatchObject({ seqs: [{ uid, seq: 1 }] });
    const { stdout: diffed } = await run(grpcurl, [
      '-plaintext',
      '-H',
      `authorization: Bearer ${API_KEY}`,
      '-d',
      JSON.stringify({ uid }),
      address,
      'minipush.v1.QueryService/Diff',
    ]);
    const page = JSON.parse(diffed);
    expect(page.headSeq).toBe(1);
    expect(JSON.parse(page.events[0].bodyJson)).toEqual({ via: 'grpcurl' });
    // The proto file the server loads is the one shipped in proto/.
    expect(protoRoot()).toMatch(/proto$/);
    expect(PROTO_FILE).toBe('minipush/v1/minipush.proto');
  });
});
