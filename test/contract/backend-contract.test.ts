import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.js';
import type { Runtime } from '../../src/runtime.js';
import {
  startPipeline,
  waitCaughtUp,
  watchChanges,
  expireEverything,
} from '../helpers/pipeline.js';
import { backendConfig, type Backend } from '../helpers/services.js';
import { API_KEY, JWT_SECRET } from '../helpers/stack.js';

const service = { kind: 'service' } as const;
let nextUid = 200_000;
const freshUid = () => nextUid++;

/**
 * The behaviours both backends must share, written once and run on each, so the embedded
 * default and Kafka + MySQL cannot drift apart.
 */
describe.each<Backend>(['kafka+mysql', 'embedded'])('backend contract: %s', (backend) => {
  let config: Config;
  let runtime: Runtime;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const made = await backendConfig(backend, {
      roles: ['api', 'projector'],
      apiKeys: [API_KEY],
      jwtSecret: JWT_SECRET,
    });
    config = made.config;
    cleanup = () => made.cleanup();
    runtime = await startPipeline(config);
  });

  afterAll(async () => {
    await runtime?.close();
    await cleanup?.();
  });

  it('should assign gap-free seqs in log order and page them by diff', async () => {
    const uid = freshUid();
    for (let i = 1; i <= 7; i++)
      await runtime.service.publish(
        service,
        { id: `c${i}-${uid}`, to: [uid], body: i },
        { wait: true },
      );
    const first = await runtime.service.diff(service, uid, 0, 3);
    expect(first.events.map((e) => [e.seq, JSON.parse(e.bodyJson)])).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
    ]);
    expect(first.more).toBe(true);
    const rest = await runtime.service.diff(service, uid, 3, 10);
    expect(rest.events.map((e) => e.seq)).toEqual([4, 5, 6, 7]);
    expect(rest.more).toBe(false);
  });

  it('should apply read marks and derive the unread count from the bitmap', async () => {
    const uid = freshUid();
    for (let i = 0; i < 4; i++)
      await runtime.service.publish(service, { to: [uid], body: i }, { wait: true });
    expect(await runtime.service.markRead(service, uid, { seqs: [1, 4] }, { wait: true })).toEqual({
      changed: 2,
    });
    expect(await runtime.service.markRead(service, uid, { upTo: 3 }, { wait: true })).toEqual({
      changed: 2,
    });
    expect(await runtime.service.markUnread(service, uid, { seqs: [3] }, { wait: true })).toEqual({
      changed: 1,
    });
    expect(await runtime.service.stats(service, uid)).toEqual({
      headSeq: 4,
      floorSeq: 1,
      unreadCount: 1,
      unseenCount: 0,
      archivedCount: 0,
      readVersion: 3,
    });
  });

  it('should notify head changes for every projected command', async () => {
    const uid = freshUid();
    const watch = await watchChanges(runtime);
    try {
      await runtime.service.publish(service, { to: [uid], body: 'x' }, { wait: true });
      await runtime.service.markRead(service, uid, { seqs: [1] }, { wait: true });
      await expect
        .poll(() => watch.changes.filter((c) => c.uid === uid).length, { timeout: 20_000 })
        .toBe(2);
      expect(
        watch.changes
          .filter((c) => c.uid === uid)
          .map((c) => [c.headSeq, c.unreadCount, c.unseenCount, c.readVersion]),
      ).toEqual([
        [1, 1, 1, 0],
        [1, 0, 0, 1],
      ]);
    } finally {
      await watch.close();
    }
  });

  it('should delete expired events from the front and answer reset below the floor', async () => {
    const uid = freshUid();
    for (let i = 0; i < 3; i++)
      await runtime.service.publish(service, { to: [uid], body: i }, { wait: true });
    await expireEverything(runtime, config.eventTtlMs);
    await runtime.service.publish(service, { to: [uid], body: 'kept' }, { wait: true });
    const page = await runtime.service.diff(service, uid, 0, 10);
    expect(page).toMatchObject({ headSeq: 4, floorSeq: 4, reset: true });
    expect(page.events.map((e) => JSON.parse(e.bodyJson))).toEqual(['kept']);
  });

  it('should keep everything across a restart and continue the seqs', async () => {
    const uid = freshUid();
    for (let i = 0; i < 3; i++)
      await runtime.service.publish(service, { to: [uid], body: i }, { wait: true });
    // Accepted but possibly not projected when the process goes away.
    const pending = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        runtime.service.publish(service, { id: `p${i}-${uid}`, to: [uid], body: `p${i}` }),
      ),
    );
    await runtime.close();
    runtime = await startPipeline(config);
    await waitCaughtUp(runtime);
    await runtime.service.publish(service, { to: [uid], body: 'after' }, { wait: true });
    const page = await runtime.service.diff(service, uid, 0, 100);
    expect(page.events.map((e) => e.seq)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    expect(JSON.parse(page.events.at(-1)!.bodyJson)).toBe('after');
    expect(new Set(page.events.map((e) => JSON.parse(e.bodyJson)))).toEqual(
      new Set([0, 1, 2, ...pending.map((_, i) => `p${i}`), 'after']),
    );
  });
});
