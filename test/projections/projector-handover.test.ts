import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBackend, prepareBackend, type Backend } from '../../src/backend.js';
import { CommandWriter } from '../../src/commands/command-writer.js';
import { commandLimits, type Config } from '../../src/config.js';
import { partitionOfUid } from '../../src/domain/partitioner.js';
import { createLogger } from '../../src/logger.js';
import { Projector } from '../../src/projections/projector.js';
import { getStats } from '../../src/queries/get-stats.js';
import { StoreUserViews } from '../../src/queries/user-view.js';
import { eventually, feedOf } from '../helpers/pipeline.js';
import { backendConfig } from '../helpers/services.js';

/**
 * A projector remembers the rows of the users it committed. When a partition goes to another
 * projector and comes back, what it remembered is old: it must read the rows again.
 */
describe('projectors handing a partition over on kafka+mysql', () => {
  let config: Config;
  let cleanup: () => Promise<void>;
  let backend: Backend;
  const logger = createLogger('silent');
  const started: Projector[] = [];
  /** Partitions each projector applied a slice of, by name. */
  const applied = { a: new Set<number>(), b: new Set<number>() };

  function projector(name: 'a' | 'b'): Projector {
    const made = new Projector({
      db: backend.db,
      log: backend.log,
      feed: backend.feed,
      limits: commandLimits(config),
      logger,
      hooks: { onApplied: (partition) => applied[name].add(partition) },
    });
    started.push(made);
    return made;
  }

  beforeAll(async () => {
    const made = await backendConfig('kafka+mysql', {});
    config = made.config;
    cleanup = () => made.cleanup();
    backend = openBackend(config, logger);
    await prepareBackend(config, backend, logger);
  }, 120_000);

  afterAll(async () => {
    for (const p of started) await p.stop();
    await backend?.close();
    await cleanup?.();
  });

  it('should read a user again after another projector changed it, not write over it', async () => {
    const writer = new CommandWriter(backend.log);
    const views = new StoreUserViews(backend.db);
    // One user per partition, so whichever partitions move, one of them has a user.
    const uids: number[] = [];
    for (let uid = 720_000; uids.length < config.partitions; uid++) {
      if (
        !uids.some(
          (u) => partitionOfUid(u, config.partitions) === partitionOfUid(uid, config.partitions),
        )
      )
        uids.push(uid);
    }
    // Given projector A alone committed an event for every user (it remembers their rows)
    const a = projector('a');
    await a.start();
    for (const uid of uids)
      await writer.write({ v: 1, type: 'publish', id: `first-${uid}`, to: [uid], body: 1 });
    await eventually(
      () => Promise.all(uids.map((uid) => getStats(views, uid))),
      (stats) => stats.every((s) => s.headSeq === 1),
      60_000,
    );
    // And projector B joined, took some partitions, and marked those users' event read
    const b = projector('b');
    await b.start();
    applied.a.clear();
    for (const uid of uids) await writer.write({ v: 1, type: 'markRead', uid, seqs: [1] });
    await eventually(
      () => Promise.all(uids.map((uid) => getStats(views, uid))),
      (stats) => stats.every((s) => s.unreadCount === 0),
      60_000,
    );
    const moved = uids.filter((uid) => applied.b.has(partitionOfUid(uid, config.partitions)));
    expect(moved.length).toBeGreaterThan(0);
    const versions = await Promise.all(moved.map(async (uid) => (await views.open(uid)).state));
    // When B leaves, A gets those partitions back and projects a new event for each user
    await b.stop();
    for (const uid of moved)
      await writer.write({ v: 1, type: 'publish', id: `second-${uid}`, to: [uid], body: 2 });
    // Then each feed goes on gap-free, and B's mark and its state version stay
    await eventually(
      () => Promise.all(moved.map((uid) => getStats(views, uid))),
      (stats) => stats.every((s) => s.headSeq === 2),
      60_000,
    );
    for (const [i, uid] of moved.entries()) {
      expect(await feedOf(backend.db, uid)).toEqual([
        { seq: 1, event_id: `first-${uid}` },
        { seq: 2, event_id: `second-${uid}` },
      ]);
      expect(await getStats(views, uid)).toMatchObject({ headSeq: 2, unreadCount: 1 });
      const { state } = await views.open(uid);
      expect(state.readVersion).toBeGreaterThanOrEqual(versions[i]!.readVersion);
      expect(state.readVersion).toBeGreaterThan(0);
    }
    expect(moved.every((uid) => applied.a.has(partitionOfUid(uid, config.partitions)))).toBe(true);
  }, 180_000);
});
