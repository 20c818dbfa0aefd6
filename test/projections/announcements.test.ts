import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBackend, prepareBackend, type Backend } from '../../src/backend.js';
import { CommandWriter } from '../../src/commands/command-writer.js';
import { commandLimits, type Config } from '../../src/config.js';
import type { FeedPosition, HeadChange } from '../../src/domain/head-state.js';
import type { ChangeFeed } from '../../src/log/log.js';
import { createLogger } from '../../src/logger.js';
import { Projector } from '../../src/projections/projector.js';
import { partitionOfUid } from '../../src/domain/partitioner.js';
import { eventually } from '../helpers/pipeline.js';
import { backendConfig, type Backend as BackendKind } from '../helpers/services.js';

let nextUid = 910_000;

/**
 * Heads are announced without the partition waiting for them: a failed announcement must still
 * reach the heads stream, after the partition reloads, and no position may claim it before.
 */
describe.each<BackendKind>(['kafka+mysql', 'embedded'])('announcements on %s', (kind) => {
  let config: Config;
  let cleanup: () => Promise<void>;
  let backend: Backend;
  let projector: Projector;
  /** Publishes that fail, while it is above zero. */
  let failing = 0;
  const attempts: Array<{ ok: boolean; changes: readonly HeadChange[] }> = [];

  beforeAll(async () => {
    const made = await backendConfig(kind, {});
    config = made.config;
    cleanup = () => made.cleanup();
    const logger = createLogger('silent');
    backend = openBackend(config, logger);
    await prepareBackend(config, backend, logger);
    // The real heads stream, with a producer that fails when told to.
    const feed: ChangeFeed = {
      publish: (changes, position?: FeedPosition) => {
        if (failing > 0) {
          failing--;
          attempts.push({ ok: false, changes });
          return Promise.reject(new Error('heads produce refused (test)'));
        }
        attempts.push({ ok: true, changes });
        return backend.feed.publish(changes, position);
      },
      subscribe: (listener, options) => backend.feed.subscribe(listener, options),
      close: () => Promise.resolve(),
    };
    projector = new Projector({
      db: backend.db,
      log: backend.log,
      feed,
      limits: commandLimits(config),
      logger,
    });
    await projector.start();
  }, 120_000);

  afterAll(async () => {
    await projector?.stop();
    await backend?.close();
    await cleanup?.();
  });

  it('should announce a change whose announcement failed before any position covering it', async () => {
    // Two users of one partition: A's announcement fails, B's commit comes after it.
    const a = nextUid++;
    const partition = partitionOfUid(a, config.partitions);
    let b = nextUid++;
    while (partitionOfUid(b, config.partitions) !== partition) b = nextUid++;
    const timeline: Array<{ uid: number; headSeq: number } | { offset: number }> = [];
    const subscription = await backend.feed.subscribe((changes, positions) => {
      for (const change of changes) {
        if (change.uid === a || change.uid === b) {
          timeline.push({ uid: change.uid, headSeq: change.headSeq });
        }
      }
      for (const position of positions) {
        if (position.partition === partition) timeline.push({ offset: position.offset });
      }
    });
    try {
      // Given the heads producer refuses the next announcement
      failing = 1;
      const writer = new CommandWriter(backend.log);
      const [first] = await writer.write({ v: 1, type: 'publish', id: `a-${a}`, to: [a], body: 1 });
      await eventually(
        () => attempts.filter((attempt) => !attempt.ok).length,
        (n) => n >= 1,
      );
      // When another user of the partition gets an event after it
      await writer.write({ v: 1, type: 'publish', id: `b-${b}`, to: [b], body: 2 });
      // Then A's head reaches the stream after all
      const heardA = () => timeline.findIndex((e) => 'uid' in e && e.uid === a && e.headSeq === 1);
      await eventually(heardA, (index) => index >= 0, 60_000);
      await eventually(
        () => timeline.some((e) => 'uid' in e && e.uid === b),
        (heard) => heard,
        60_000,
      );
      // And no position said A's commit was announced before A's change was
      const covering = timeline.findIndex((e) => 'offset' in e && e.offset > first!.offset);
      expect(covering).toBeGreaterThan(heardA());
      expect(attempts[attempts.length - 1]!.ok).toBe(true);
    } finally {
      await subscription.close();
    }
  });
});
