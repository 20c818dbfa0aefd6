import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeBitmap } from '../../src/domain/read-bitmap.js';
import { decodeCompact } from '../../src/domain/read-compact.js';
import { loadPackageDefinition } from '../../src/transports/grpc/server.js';
import type { Backend } from '../helpers/services.js';
import { signUserToken, startStack, type Stack } from '../helpers/stack.js';
import { connect, type TestSocket } from '../helpers/ws-client.js';

let nextUid = 140_000;
const freshUid = () => nextUid++;

type Client = grpc.Client &
  Record<string, (req: unknown, md: grpc.Metadata, cb: grpc.requestCallback<any>) => void>;

/** Seen, archived and unarchived marks, their counts and filters, on every transport. */
describe.each<Backend>(['kafka+mysql', 'embedded'])('inbox states on %s', (backend) => {
  let stack: Stack;
  let wsUrl: string;
  let command: Client;
  let query: Client;
  const sockets: TestSocket[] = [];

  beforeAll(async () => {
    stack = await startStack(backend, { nudgeWindowMs: 20, maxLimit: 500 }, [
      'api',
      'hub',
      'projector',
    ]);
    wsUrl = `${stack.url.replace('http', 'ws')}/v1/ws`;
    const loaded = grpc.loadPackageDefinition(loadPackageDefinition()) as any;
    const address = `127.0.0.1:${stack.runtime.grpcPort}`;
    command = new loaded.minipush.v1.CommandService(address, grpc.credentials.createInsecure());
    query = new loaded.minipush.v1.QueryService(address, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    for (const socket of sockets) await socket.close();
    command?.close();
    query?.close();
    await stack?.close();
  });

  async function feed(events: number): Promise<{ uid: number; auth: string }> {
    const uid = freshUid();
    for (let i = 1; i <= events; i++) {
      const res = await stack.call('POST', '/v1/events?wait=true', {
        body: { to: [uid], body: { n: i } },
      });
      expect(res.status).toBe(200);
    }
    return { uid, auth: await stack.userAuth(uid) };
  }

  const mark = (uid: number, auth: string, what: string, body: unknown) =>
    stack.call('POST', `/v1/users/${uid}/${what}?wait=true`, { auth, body });
  const stats = async (uid: number) => (await stack.call('GET', `/v1/users/${uid}/stats`)).body;
  const seqsOf = (page: { events: Array<{ seq: number }> }) => page.events.map((e) => e.seq);

  function grpcCall<T = any>(client: Client, method: string, request: unknown, token: string) {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    return new Promise<T>((resolve, reject) => {
      client[method]!(request, md, (err: grpc.ServiceError | null, res: T) =>
        err ? reject(err) : resolve(res),
      );
    });
  }

  it('should count unseen, unread and archived from the bitmaps as marks flip them', async () => {
    // Given ten unread, unseen events
    const { uid, auth } = await feed(10);
    expect(await stats(uid)).toMatchObject({
      unreadCount: 10,
      unseenCount: 10,
      archivedCount: 0,
      readVersion: 0,
    });
    // When the inbox opens (seen up to the head), then two are read and three archived
    expect(await mark(uid, auth, 'seen', { upTo: 10 })).toEqual({
      status: 200,
      body: { changed: 10 },
    });
    expect((await stats(uid)).unseenCount).toBe(0);
    expect(await mark(uid, auth, 'read', { seqs: [1, 2] })).toEqual({
      status: 200,
      body: { changed: 2 },
    });
    expect(await mark(uid, auth, 'archive', { seqs: [2, 3, 4] })).toEqual({
      status: 200,
      body: { changed: 3 },
    });
    // Then archived events leave the unread count (one read, two unread of them)
    expect(await stats(uid)).toEqual({
      headSeq: 10,
      floorSeq: 1,
      unreadCount: 6,
      unseenCount: 0,
      archivedCount: 3,
      readVersion: 3,
    });
    // And marks that flip nothing change nothing, not even the version
    expect((await mark(uid, auth, 'archive', { seqs: [3] })).body).toEqual({ changed: 0 });
    expect((await mark(uid, auth, 'seen', { seqs: [5, 99] })).body).toEqual({ changed: 0 });
    expect((await stats(uid)).readVersion).toBe(3);
    // When archived events up to 3 come back
    expect((await mark(uid, auth, 'unarchive', { upTo: 3 })).body).toEqual({ changed: 2 });
    expect(await stats(uid)).toMatchObject({ unreadCount: 7, archivedCount: 1, readVersion: 4 });
    // And mark read also marks seen, mark unread does not unsee
    const fresh = await feed(3);
    expect((await mark(fresh.uid, fresh.auth, 'read', { upTo: 2 })).body).toEqual({ changed: 2 });
    expect((await mark(fresh.uid, fresh.auth, 'unread', { seqs: [1] })).body).toEqual({
      changed: 1,
    });
    expect(await stats(fresh.uid)).toMatchObject({ unreadCount: 2, unseenCount: 1 });
  });

  it('should filter diff and range fetch by status with correct paging and per-event states', async () => {
    // Given 12 events: 1–4 read, 5 seen, 6 and 9 archived
    const { uid, auth } = await feed(12);
    await mark(uid, auth, 'read', { upTo: 4 });
    await mark(uid, auth, 'seen', { seqs: [5] });
    await mark(uid, auth, 'archive', { seqs: [6, 9] });
    const get = async (query: string) => {
      const res = await stack.call('GET', `/v1/users/${uid}/events?${query}`, { auth });
      expect(res.status).toBe(200);
      return res.body;
    };
    // Then the default view leaves archived events out, and `all` has them
    expect(seqsOf(await get('after=0'))).toEqual([1, 2, 3, 4, 5, 7, 8, 10, 11, 12]);
    expect(seqsOf(await get('after=0&status=all'))).toHaveLength(12);
    // And unread pages continue after the last seq answered, `more` meaning more unread
    const first = await get('after=0&status=unread&limit=3');
    expect(seqsOf(first)).toEqual([5, 7, 8]);
    expect(first.more).toBe(true);
    const second = await get('after=8&status=unread&limit=3');
    expect(seqsOf(second)).toEqual([10, 11, 12]);
    expect(second.more).toBe(false);
    expect(seqsOf(await get('after=0&status=unseen'))).toEqual([7, 8, 10, 11, 12]);
    // And the archived tab, newest first in a range fetch, with each event's states
    const archived = await get('from=1&to=12&status=archived');
    expect(archived.events).toEqual([
      {
        seq: 9,
        createTime: expect.any(Number),
        body: { n: 9 },
        read: false,
        seen: false,
        archived: true,
      },
      {
        seq: 6,
        createTime: expect.any(Number),
        body: { n: 6 },
        read: false,
        seen: false,
        archived: true,
      },
    ]);
    expect((await get('from=1&to=12&status=archived&limit=1')).more).toBe(true);
    const states = (await get('from=4&to=5&order=asc')).events;
    expect(states.map((e: any) => [e.seq, e.read, e.seen, e.archived])).toEqual([
      [4, true, true, false],
      [5, false, true, false],
    ]);
    // And a bad filter is a clear 400
    const bad = await stack.call('GET', `/v1/users/${uid}/events?status=starred`, { auth });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('MINIPUSH_BAD_REQUEST');
    expect(bad.body.error.message).toContain('unarchived, all, unread, unseen, archived');
  });

  it('should give the seen and archived bitmaps in every read-states format', async () => {
    const { uid, auth } = await feed(6);
    await mark(uid, auth, 'seen', { upTo: 3 });
    await mark(uid, auth, 'archive', { seqs: [2, 5] });
    const roaring = await stack.call('GET', `/v1/users/${uid}/read-states?state=seen`, { auth });
    expect(decodeBitmap(Buffer.from(roaring.body.bitmap, 'base64')).toArray()).toEqual([1, 2, 3]);
    const compact = await stack.call(
      'GET',
      `/v1/users/${uid}/read-states?state=archived&format=compact`,
      { auth },
    );
    const decoded = decodeCompact(Buffer.from(compact.body.compact, 'base64'), 1, 6);
    expect(decoded).toEqual([2, 5]);
    const read = await stack.call('GET', `/v1/users/${uid}/read-states`, { auth });
    expect(decodeBitmap(Buffer.from(read.body.bitmap, 'base64')).toArray()).toEqual([]);
  });

  it('should refuse bad marks and other users’ marks with the read marks’ errors', async () => {
    const { uid, auth } = await feed(1);
    const both = await mark(uid, auth, 'archive', { seqs: [1], upTo: 1 });
    expect(both.status).toBe(400);
    expect(both.body.error.message).toContain('either seqs');
    const badSeq = await mark(uid, auth, 'seen', { seqs: [0] });
    expect(badSeq.status).toBe(400);
    expect(badSeq.body.error.code).toBe('MINIPUSH_INVALID_SEQ');
    const other = await stack.call('POST', `/v1/users/${uid + 1}/unarchive`, {
      auth,
      body: { seqs: [1] },
    });
    expect(other.status).toBe(403);
    const accepted = await stack.call('POST', `/v1/users/${uid}/archive`, {
      auth,
      body: { upTo: 1 },
    });
    expect(accepted.status).toBe(202);
    expect(accepted.body.position).toMatch(/^\d+:\d+$/);
  });

  it('should nudge every tab with the new counts over WebSocket, and take marks and filters there', async () => {
    // Given two tabs of a user with three events
    const { uid } = await feed(3);
    const token = await signUserToken(uid);
    const tabs = await Promise.all(
      [0, 1].map(async () => {
        const socket = await connect(wsUrl, { token });
        sockets.push(socket);
        return socket;
      }),
    );
    const hello = await tabs[0]!.next((m) => m.type === 'hello');
    expect(hello).toMatchObject({ headSeq: 3, unreadCount: 3, unseenCount: 3, archivedCount: 0 });
    // When one tab opens the inbox and archives an event
    expect(await tabs[0]!.request('markSeen', { upTo: 3 })).toMatchObject({
      type: 'markSeen',
      changed: 3,
    });
    expect(await tabs[0]!.request('archive', { seqs: [1] })).toMatchObject({ changed: 1 });
    // Then both tabs hear the counts of the newest state
    for (const tab of tabs) {
      const head = await tab.next(
        (m) => m.type === 'head' && m.archivedCount === 1 && m.unseenCount === 0,
      );
      expect(head).toMatchObject({ headSeq: 3, unreadCount: 2, readVersion: 2 });
    }
    // And the tab reads the archived tab and un-archives it
    const page = await tabs[1]!.request('diff', { after: 0, status: 'archived' });
    expect(page.events.map((e: any) => [e.seq, e.archived, e.seen])).toEqual([[1, true, true]]);
    expect(await tabs[1]!.request('unarchive', { seqs: [1] })).toMatchObject({ changed: 1 });
    expect(await tabs[1]!.request('stats')).toMatchObject({ archivedCount: 0, unreadCount: 3 });
    const states = await tabs[1]!.request('readStates', { state: 'seen' });
    expect(decodeBitmap(Buffer.from(states.bitmap, 'base64')).toArray()).toEqual([1, 2, 3]);
    // And a bad filter is an error answer, not a closed session
    const bad = await tabs[1]!.request('diff', { status: 'nope' });
    expect(bad).toMatchObject({ type: 'error', code: 'MINIPUSH_BAD_REQUEST' });
  });

  it('should serve the same over gRPC', async () => {
    const { uid } = await feed(5);
    const token = await signUserToken(uid);
    expect(await grpcCall(command, 'MarkSeen', { uid, upTo: 2, wait: true }, token)).toMatchObject({
      changed: 2,
    });
    expect(
      await grpcCall(command, 'Archive', { uid, seqs: [4, 5], wait: true }, token),
    ).toMatchObject({ changed: 2 });
    expect(await grpcCall(command, 'Unarchive', { uid, upTo: 4, wait: true }, token)).toMatchObject(
      { changed: 1 },
    );
    expect(await grpcCall(query, 'GetStats', { uid }, token)).toMatchObject({
      unreadCount: 4,
      unseenCount: 2,
      archivedCount: 1,
    });
    const unseen = await grpcCall(
      query,
      'Diff',
      { uid, after: 0, status: 'STATUS_FILTER_UNSEEN' },
      token,
    );
    expect(unseen.events.map((e: any) => e.seq)).toEqual([3, 4]);
    const archived = await grpcCall(
      query,
      'Fetch',
      { uid, from: 1, to: 5, status: 'STATUS_FILTER_ARCHIVED' },
      token,
    );
    expect(archived.events.map((e: any) => [e.seq, e.archived, e.seen])).toEqual([
      [5, true, false],
    ]);
    const seen = await grpcCall(query, 'GetReadStates', { uid, state: 'INBOX_STATE_SEEN' }, token);
    expect(decodeBitmap(seen.roaring).toArray()).toEqual([1, 2]);
  });
});
