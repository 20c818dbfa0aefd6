import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionState, TabClient, type FeedEvent } from '../../src/client/index.js';
import { signUserToken, startStack, type Stack } from '../helpers/stack.js';

// Node has BroadcastChannel but no Web Locks, so these tabs elect over the channel: the fallback
// path. The browser test covers Web Locks.
describe('TabClient (BroadcastChannel election) on an in-process hub', () => {
  let stack: Stack;
  const tabs: TabClient[] = [];

  beforeAll(async () => {
    stack = await startStack('embedded', { nudgeWindowMs: 20, maxConnectionsPerIp: 0 }, [
      'api',
      'hub',
      'projector',
    ]);
  });

  afterAll(async () => {
    for (const tab of tabs) tab.disconnect();
    await stack?.close();
  });

  async function publish(uid: number, text: string) {
    const res = await stack.call('POST', '/v1/events?wait=true', {
      body: { to: [uid], body: { text } },
    });
    expect(res.status).toBe(200);
  }

  it('should hold one socket for all tabs, share events and reads, and hand over when the leader goes', async () => {
    const uid = 130_001;
    const received = new Map<TabClient, number[]>();
    for (let i = 0; i < 3; i++) {
      const tab = new TabClient({
        url: `${stack.url.replace('http', 'ws')}/v1/ws`,
        getToken: () => signUserToken(uid),
        WebSocket,
        scope: `test-${uid}`,
        locks: null,
        leaderHeartbeatMs: 100,
        minReconnectDelayMs: 20,
        maxReconnectDelayMs: 200,
      });
      tabs.push(tab);
      received.set(tab, []);
      tab.on('event', (e: FeedEvent) => received.get(tab)!.push(e.seq));
      tab.connect();
      expect(tab.electionMethod).toBe('broadcast-channel');
    }
    const leaders = () => tabs.filter((t) => t.role === 'leader');
    await expect.poll(() => leaders().length, { timeout: 10_000 }).toBe(1);
    for (const tab of tabs) {
      await expect.poll(() => tab.state, { timeout: 10_000 }).toBe(ConnectionState.Connected);
    }
    expect(stack.runtime.hub!.counts().sessions).toBe(1);

    for (const text of ['a', 'b', 'c']) await publish(uid, text);
    for (const tab of tabs) {
      await expect.poll(() => tab.unreadCount, { timeout: 10_000 }).toBe(3);
      await expect.poll(() => tab.list().length, { timeout: 10_000 }).toBe(3);
    }

    const [follower] = tabs.filter((t) => t.role === 'follower');
    expect(await follower!.markRead([1])).toEqual({ changed: 1 });
    for (const tab of tabs) {
      await expect.poll(() => tab.unreadCount, { timeout: 10_000 }).toBe(2);
      await expect.poll(() => tab.list().find((e) => e.seq === 1)?.read).toBe(true);
    }

    const oldLeader = leaders()[0]!;
    oldLeader.disconnect();
    const rest = tabs.filter((t) => t !== oldLeader);
    await expect
      .poll(() => rest.filter((t) => t.role === 'leader').length, {
        timeout: 10_000,
      })
      .toBe(1);
    await expect.poll(() => stack.runtime.hub!.counts().sessions, { timeout: 10_000 }).toBe(1);
    for (const tab of rest) {
      await expect.poll(() => tab.state, { timeout: 10_000 }).toBe(ConnectionState.Connected);
    }

    await publish(uid, 'd');
    const stillFollowing = rest.find((t) => t.role === 'follower')!;
    for (const tab of rest) {
      await expect
        .poll(() => tab.list().map((e) => e.seq), { timeout: 10_000 })
        .toEqual([4, 3, 2, 1]);
    }
    expect(await stillFollowing.markAllRead()).toEqual({ changed: 3 });
    for (const tab of rest) await expect.poll(() => tab.unreadCount, { timeout: 10_000 }).toBe(0);
    expect((await stack.call('GET', `/v1/users/${uid}/stats`)).body.unreadCount).toBe(0);
    // Every tab saw each event once, whoever led at the time.
    for (const tab of rest) expect(received.get(tab)).toEqual([1, 2, 3, 4]);
    expect(received.get(oldLeader)).toEqual([1, 2, 3]);
  });

  it('should forward seen and archive marks from a follower and mirror counts and flags on every tab', async () => {
    const uid = 130_002;
    const mine: TabClient[] = [];
    for (let i = 0; i < 2; i++) {
      const tab = new TabClient({
        url: `${stack.url.replace('http', 'ws')}/v1/ws`,
        getToken: () => signUserToken(uid),
        WebSocket,
        scope: `test-${uid}`,
        locks: null,
        leaderHeartbeatMs: 100,
      });
      tabs.push(tab);
      mine.push(tab);
      tab.connect();
    }
    await expect
      .poll(() => mine.filter((t) => t.role === 'leader').length, { timeout: 10_000 })
      .toBe(1);
    const leader = mine.find((t) => t.role === 'leader')!;
    const follower = mine.find((t) => t.role === 'follower')!;
    await expect.poll(() => follower.state, { timeout: 10_000 }).toBe(ConnectionState.Connected);
    const followerFlags: string[] = [];
    follower.on('seen', (c) => followerFlags.push(`seen ${c.seqs.join(',')}`));
    follower.on('archived', (c) =>
      followerFlags.push(`archived ${c.seqs.join(',')} ${c.archived}`),
    );
    const followerBadge: number[] = [];
    follower.on('unseen', (n) => followerBadge.push(n));

    for (const text of ['a', 'b', 'c']) await publish(uid, text);
    for (const tab of mine) {
      await expect.poll(() => tab.unseenCount, { timeout: 10_000 }).toBe(3);
      await expect.poll(() => tab.list().length, { timeout: 10_000 }).toBe(3);
    }

    expect(await follower.markSeen([1])).toEqual({ changed: 1 });
    await expect.poll(() => follower.unseenCount, { timeout: 10_000 }).toBe(2);
    expect(await follower.markAllSeen()).toEqual({ changed: 2 });
    expect(await follower.archive([2])).toEqual({ changed: 1 });
    for (const tab of mine) {
      await expect
        .poll(() => tab.counts, { timeout: 10_000 })
        .toEqual({ unreadCount: 2, unseenCount: 0, archivedCount: 1 });
      await expect
        .poll(() => tab.list({ status: 'archived' }).map((e) => e.seq), { timeout: 10_000 })
        .toEqual([2]);
      expect(tab.list().every((e) => e.seen && !e.read)).toBe(true);
    }
    expect(await follower.unarchive([2])).toEqual({ changed: 1 });
    for (const tab of mine) {
      await expect.poll(() => tab.archivedCount, { timeout: 10_000 }).toBe(0);
      await expect.poll(() => tab.list({ status: 'archived' }).length, { timeout: 10_000 }).toBe(0);
    }
    expect(followerFlags).toEqual(['seen 1', 'seen 2,3', 'archived 2 true', 'archived 2 false']);
    // Up to 3 as the events came (nudges may merge), then down with each seen mark.
    expect(followerBadge.slice(followerBadge.indexOf(3))).toEqual([3, 2, 0]);
    expect((await stack.call('GET', `/v1/users/${uid}/stats`)).body).toMatchObject(leader.counts);
  });
});
