import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBackend } from '../../src/backend.js';
import type { Config } from '../../src/config.js';
import type { FeedPosition, HeadChange } from '../../src/domain/head-state.js';
import type {
  ChangeFeed,
  ChangeListener,
  SubscribeOptions,
  Subscription,
} from '../../src/log/log.js';
import { createLogger } from '../../src/logger.js';
import { readEpoch } from '../../src/projections/checkpoints.js';
import { ReadCache } from '../../src/queries/read-cache.js';
import type { Runtime } from '../../src/runtime.js';
import { migrateDown, migrateLatest } from '../../src/store/database.js';
import { expireEverything, startPipeline } from '../helpers/pipeline.js';
import { backendConfig, type Backend } from '../helpers/services.js';
import { API_KEY, JWT_SECRET, signUserToken } from '../helpers/stack.js';

let nextUid = 640_000;
const freshUid = () => nextUid++;
const TTL_MS = 3_600_000;

/** A REST client of one running MiniPush. */
function client(runtime: Runtime) {
  return async (method: string, path: string, body?: unknown, uid?: number) => {
    const auth = uid === undefined ? API_KEY : await signUserToken(uid);
    const response = await fetch(`${runtime.httpUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${auth}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json = (await response.json()) as any;
    if (response.status >= 300) throw new Error(`${method} ${path}: ${JSON.stringify(json)}`);
    return json;
  };
}

/** What a user's four queries answer on one process. */
async function readAll(runtime: Runtime, uid: number) {
  const call = client(runtime);
  const [diff, range, stats, readStates] = await Promise.all([
    call('GET', `/v1/users/${uid}/events?after=0`, undefined, uid),
    call('GET', `/v1/users/${uid}/events?from=0&to=1000000&order=asc`, undefined, uid),
    call('GET', `/v1/users/${uid}/stats`, undefined, uid),
    call('GET', `/v1/users/${uid}/read-states?format=compact`, undefined, uid),
  ]);
  return { diff, range, stats, readStates };
}

/**
 * Reads a user until the cache answers from memory: a state read while a change of the user
 * arrived is not kept, so the first reads after a write may all read the store.
 */
async function cached(cache: ReadCache, uid: number, tries = 10): Promise<void> {
  for (let i = 0; i < tries; i++) {
    const hits = cache.stats().hits;
    await cache.open(uid);
    if (cache.stats().hits > hits) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`uid ${uid} was never answered from memory: ${JSON.stringify(cache.stats())}`);
}

function cacheOf(runtime: Runtime): ReadCache {
  expect(runtime.readCache).not.toBeNull();
  return runtime.readCache!;
}

describe.each<Backend>(['kafka+mysql', 'embedded'])('read cache (%s)', (backend) => {
  let config: Config;
  let cleanup: () => Promise<void>;
  /** Projects (and, on Kafka, only that); answers queries on the embedded default. */
  let projector: Runtime;
  /** Two processes answering queries: on the embedded default both are the one process. */
  let writer: Runtime;
  let reader: Runtime;
  const runtimes: Runtime[] = [];

  beforeAll(async () => {
    const made = await backendConfig(backend, {
      apiKeys: [API_KEY],
      jwtSecret: JWT_SECRET,
      grpcPort: -1,
      eventTtlMs: TTL_MS,
    });
    config = made.config;
    cleanup = () => made.cleanup();
    if (backend === 'embedded') {
      projector = await startPipeline({ ...config, roles: ['api', 'projector'] });
      runtimes.push(projector);
      writer = reader = projector;
    } else {
      projector = await startPipeline({ ...config, roles: ['projector'] });
      runtimes.push(projector);
      writer = await startPipeline({ ...config, roles: ['api'] });
      runtimes.push(writer);
      reader = await startPipeline({ ...config, roles: ['api'] });
      runtimes.push(reader);
    }
  }, 120_000);

  afterAll(async () => {
    for (const runtime of runtimes.reverse()) await runtime.close();
    await cleanup?.();
  });

  it('should answer every query with the writes another process answered with wait=true', async () => {
    const uid = freshUid();
    const write = client(writer);
    // Warm the reader: from here on its answers come from memory whenever they may.
    await readAll(reader, uid);
    await write('POST', '/v1/events?wait=true', { to: [uid], body: { n: 0 } });
    await readAll(reader, uid);
    const before = cacheOf(reader).stats();
    let readUpTo = 0;
    for (let n = 1; n <= 12; n++) {
      await write('POST', '/v1/events?wait=true', { to: [uid], body: { n } });
      let seen = await readAll(reader, uid);
      expect(seen.stats).toMatchObject({ headSeq: n + 1, unreadCount: n + 1 - readUpTo });
      expect(seen.diff.events.map((e: any) => e.body.n)).toEqual(
        Array.from({ length: n + 1 }, (_, i) => i),
      );
      expect(seen.range.headSeq).toBe(n + 1);
      expect(seen.range.events).toHaveLength(n + 1);
      if (n % 2 === 1) continue;
      // Every other round, read everything so far on the writer and look again.
      await write('POST', `/v1/users/${uid}/read?wait=true`, { upTo: n + 1 });
      readUpTo = n + 1;
      seen = await readAll(reader, uid);
      expect(seen.stats).toMatchObject({ headSeq: n + 1, unreadCount: 0 });
      expect(seen.diff.events.every((e: any) => e.read)).toBe(true);
      const again = await readAll(reader, uid);
      expect(again.readStates).toEqual(seen.readStates);
    }
    const after = cacheOf(reader).stats();
    // The reader answered from memory, so its answers above prove the cache exact.
    expect(after.hits - before.hits).toBeGreaterThan(12);
    expect(after.pageHits - before.pageHits).toBeGreaterThan(0);
  });

  it('should answer the seen, archive and unarchive marks another process answered with wait=true', async () => {
    const uid = freshUid();
    const write = client(writer);
    const read = client(reader);
    for (let n = 1; n <= 6; n++) {
      await write('POST', '/v1/events?wait=true', { to: [uid], body: { n } });
    }
    const view = async () => {
      const [stats, inbox, unseen, archived] = await Promise.all([
        read('GET', `/v1/users/${uid}/stats`, undefined, uid),
        read('GET', `/v1/users/${uid}/events?after=0`, undefined, uid),
        read('GET', `/v1/users/${uid}/events?after=0&status=unseen`, undefined, uid),
        read('GET', `/v1/users/${uid}/events?from=1&to=6&status=archived`, undefined, uid),
      ]);
      const seqs = (page: any) => page.events.map((e: any) => e.seq);
      return { stats, inbox: seqs(inbox), unseen: seqs(unseen), archived: seqs(archived) };
    };
    // Warm the reader: from here on its answers come from memory whenever they may.
    await view();
    const before = cacheOf(reader).stats();
    const steps: Array<[string, unknown, object]> = [
      ['seen', { upTo: 3 }, { unseenCount: 3, unreadCount: 6, archivedCount: 0 }],
      ['archive', { seqs: [2, 5] }, { unseenCount: 2, unreadCount: 4, archivedCount: 2 }],
      ['read', { seqs: [6] }, { unseenCount: 1, unreadCount: 3, archivedCount: 2 }],
      ['unarchive', { upTo: 2 }, { unseenCount: 1, unreadCount: 4, archivedCount: 1 }],
    ];
    const expected = [
      { inbox: [1, 2, 3, 4, 5, 6], unseen: [4, 5, 6], archived: [] },
      { inbox: [1, 3, 4, 6], unseen: [4, 6], archived: [5, 2] },
      { inbox: [1, 3, 4, 6], unseen: [4], archived: [5, 2] },
      { inbox: [1, 2, 3, 4, 6], unseen: [4], archived: [5] },
    ];
    for (const [i, [what, body, counts]] of steps.entries()) {
      await write('POST', `/v1/users/${uid}/${what}?wait=true`, body, uid);
      // A new state version drops the kept state: the first answer reads the store, and once
      // the state is kept again, memory must answer the same.
      const seen = await view();
      expect(seen.stats).toMatchObject({ ...counts, readVersion: i + 1 });
      expect({ inbox: seen.inbox, unseen: seen.unseen, archived: seen.archived }).toEqual(
        expected[i],
      );
      await cached(cacheOf(reader), uid);
      const hits = cacheOf(reader).stats().hits;
      expect(await view()).toEqual(seen);
      expect(cacheOf(reader).stats().hits - hits).toBe(4);
    }
    expect(cacheOf(reader).stats().hits - before.hits).toBeGreaterThan(16);
  });

  it('should answer from memory right after a write, in a process that had not read yet', async () => {
    const cache = new ReadCache({
      db: reader.backend.db,
      feed: reader.backend.feed,
      topic: reader.backend.log.topic,
      maxBytes: 1 << 20,
      waitMs: 1_000,
      logger: createLogger('warn'),
    });
    await cache.start();
    try {
      const uid = freshUid();
      await client(writer)('POST', '/v1/events?wait=true', { to: [uid], body: {} });
      // The write's position came before the cache knew the epoch: it must still count.
      expect((await cache.open(uid)).state.headSeq).toBe(1);
      await cached(cache, uid);
      expect((await cache.open(uid)).state.headSeq).toBe(1);
      expect(cache.stats().fallbacks).toBe(0);
    } finally {
      await cache.stop();
    }
  });

  it('should never answer a lower head, floor or read version than before', async () => {
    const uid = freshUid();
    const write = client(writer);
    const read = client(reader);
    let writing = true;
    const writes = (async () => {
      for (let n = 0; n < 30; n++) {
        await write('POST', '/v1/events', { to: [uid], body: { n } });
        if (n % 5 === 4) await write('POST', `/v1/users/${uid}/read`, { upTo: n + 1 });
      }
      await write('POST', '/v1/events?wait=true', { to: [uid], body: { n: 'last' } });
      writing = false;
    })();
    const answers: Array<{ headSeq: number; floorSeq: number; readVersion: number }> = [];
    while (writing) answers.push(await read('GET', `/v1/users/${uid}/stats`, undefined, uid));
    await writes;
    answers.push(await read('GET', `/v1/users/${uid}/stats`, undefined, uid));
    expect(answers.at(-1)).toMatchObject({ headSeq: 31, readVersion: 6 });
    for (let i = 1; i < answers.length; i++) {
      const [was, is] = [answers[i - 1]!, answers[i]!];
      expect(is.headSeq).toBeGreaterThanOrEqual(was.headSeq);
      expect(is.floorSeq).toBeGreaterThanOrEqual(was.floorSeq);
      expect(is.readVersion).toBeGreaterThanOrEqual(was.readVersion);
    }
  });

  it('should stop serving events the TTL cleaner expired, and say reset below the floor', async () => {
    const uid = freshUid();
    const write = client(writer);
    for (let n = 0; n < 5; n++) {
      await write('POST', '/v1/events?wait=true', { to: [uid], body: { n } });
    }
    // Cached, events and all.
    expect((await readAll(reader, uid)).diff.events).toHaveLength(5);
    expect((await readAll(reader, uid)).diff.events).toHaveLength(5);
    await expireEverything(projector, TTL_MS);
    const seen = await readAll(reader, uid);
    expect(seen.stats).toMatchObject({ headSeq: 5, floorSeq: 6, unreadCount: 0 });
    expect(seen.diff).toMatchObject({ headSeq: 5, floorSeq: 6, events: [], reset: true });
    expect(seen.range).toMatchObject({ floorSeq: 6, events: [], reset: true });
    await write('POST', '/v1/events?wait=true', { to: [uid], body: { n: 5 } });
    const diff = await client(reader)('GET', `/v1/users/${uid}/events?after=2`, undefined, uid);
    expect(diff).toMatchObject({ headSeq: 6, floorSeq: 6, reset: true });
    expect(diff.events.map((e: any) => e.seq)).toEqual([6]);
  });

  it('should forget every row when the read model is dropped and made anew', async () => {
    if (backend === 'embedded') {
      // The serving process owns the embedded store: rebuild and migrate, which open it
      // exclusively, are refused while it runs, so its cache reads the epoch only once.
      expect(() => openBackend(config, createLogger('warn'))).toThrow(/in use/);
      return;
    }
    const uid = freshUid();
    const write = client(writer);
    await write('POST', '/v1/events?wait=true', { to: [uid], body: { n: 0 } });
    await readAll(reader, uid);
    expect((await readAll(reader, uid)).stats.headSeq).toBe(1);
    const db = projector.backend.db;
    const epoch = await readEpoch(db);
    // The tables dropped and created empty, as a dropped database migrated again would be.
    await migrateDown(db);
    await migrateLatest(db);
    expect(await readEpoch(db)).not.toBe(epoch);
    const seen = await readAll(reader, uid);
    expect(seen.stats).toMatchObject({ headSeq: 0, unreadCount: 0 });
    expect(seen.diff.events).toEqual([]);
  });
});

/** A heads stream whose deliveries can be held back, as a lagging or broken subscription. */
class HeldFeed implements ChangeFeed {
  held = false;
  active = true;
  private readonly queue: Array<[HeadChange[], FeedPosition[]]> = [];
  private listener: ChangeListener | null = null;

  constructor(private readonly feed: ChangeFeed) {}

  publish(changes: readonly HeadChange[], position?: FeedPosition): Promise<void> {
    return this.feed.publish(changes, position);
  }

  async subscribe(onChanges: ChangeListener, options?: SubscribeOptions): Promise<Subscription> {
    this.listener = onChanges;
    const upstream = await this.feed.subscribe((changes, positions) => {
      if (this.held) this.queue.push([[...changes], [...positions]]);
      else onChanges(changes, positions);
    }, options);
    return { close: () => upstream.close(), isActive: () => this.active };
  }

  release(): void {
    this.held = false;
    for (const [changes, positions] of this.queue.splice(0)) this.listener?.(changes, positions);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

describe('read cache behind the heads stream (Kafka + MariaDB)', () => {
  let cleanup: () => Promise<void>;
  let pipeline: Runtime;
  let feed: HeldFeed;
  let cache: ReadCache;

  beforeAll(async () => {
    const made = await backendConfig('kafka+mysql', {
      apiKeys: [API_KEY],
      jwtSecret: JWT_SECRET,
      grpcPort: -1,
      readCacheBytes: 0,
    });
    cleanup = () => made.cleanup();
    pipeline = await startPipeline({ ...made.config, roles: ['api', 'projector'] });
    feed = new HeldFeed(pipeline.backend.feed);
    cache = new ReadCache({
      db: pipeline.backend.db,
      feed,
      topic: pipeline.backend.log.topic,
      maxBytes: 1 << 20,
      // Long enough for the heads stream on a busy box, short enough for the behind case.
      waitMs: 1_000,
      logger: createLogger('warn'),
    });
    await cache.start();
  }, 120_000);

  afterAll(async () => {
    await cache?.stop();
    await pipeline?.close();
    await cleanup?.();
  });

  async function publish(uid: number) {
    await client(pipeline)('POST', '/v1/events?wait=true', { to: [uid], body: {} });
  }

  it('should read the store while the heads stream is behind, and memory once it caught up', async () => {
    const uid = freshUid();
    await publish(uid);
    await cached(cache, uid);
    expect((await cache.open(uid)).state.headSeq).toBe(1);
    feed.held = true;
    await publish(uid);
    const fallbacks = cache.stats().fallbacks;
    expect((await cache.open(uid)).state.headSeq).toBe(2);
    expect(cache.stats().fallbacks).toBe(fallbacks + 1);
    feed.release();
    const hits = cache.stats().hits;
    expect((await cache.open(uid)).state.headSeq).toBe(2);
    expect(cache.stats().hits).toBe(hits + 1);
  });

  it('should read the store while the subscription is down', async () => {
    const uid = freshUid();
    await publish(uid);
    await cached(cache, uid);
    feed.active = false;
    await publish(uid);
    const fallbacks = cache.stats().fallbacks;
    expect((await cache.open(uid)).state.headSeq).toBe(2);
    expect(cache.stats().fallbacks).toBe(fallbacks + 1);
    feed.active = true;
  });

  it('should stay within its memory budget, evicting the least recently read', async () => {
    const small = new ReadCache({
      db: pipeline.backend.db,
      feed,
      topic: pipeline.backend.log.topic,
      maxBytes: 4096,
      waitMs: 20,
      logger: createLogger('warn'),
    });
    await small.start();
    try {
      const uids = Array.from({ length: 30 }, freshUid);
      await client(pipeline)('POST', '/v1/events?wait=true', { to: uids, body: { pad: 'x' } });
      for (const uid of uids) {
        await cached(small, uid);
        const view = await small.open(uid);
        await view.page(1, 1, 'asc', 1);
      }
      const stats = small.stats();
      expect(stats.bytes).toBeLessThanOrEqual(4096);
      expect(stats.evictions).toBeGreaterThan(0);
      expect(stats.entries).toBeLessThan(30);
    } finally {
      await small.stop();
    }
  });
});
