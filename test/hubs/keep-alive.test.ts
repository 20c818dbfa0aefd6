import { afterEach, describe, expect, it } from 'vitest';
import { KeepAlive } from '../../src/hubs/keep-alive.js';
import { SessionRegistry, type Session } from '../../src/hubs/session-registry.js';
import { eventually } from '../helpers/pipeline.js';
import { fakeSession, quietSocket } from '../helpers/sessions.js';

function session(id: number, onPing: () => void): Session {
  return fakeSession(`s${id}`, id, quietSocket({ ping: onPing }));
}

describe('KeepAlive', () => {
  let keepAlive: KeepAlive | null = null;
  afterEach(() => keepAlive?.stop());

  it('should ping every session due once, a chunk per turn of the event loop', async () => {
    // Given 2,000 sessions whose pings all fall due at once (they opened together)
    const registry = new SessionRegistry(1 << 20);
    let pings = 0;
    for (let id = 1; id <= 2000; id++) registry.add(session(id, () => pings++));
    keepAlive = new KeepAlive({
      registry,
      pingIntervalMs: 60_000,
      pongTimeoutMs: 20,
      now: () => 100_000,
      onExpired: () => undefined,
    });
    // When the sweep runs, with other work queued on the event loop beside it
    const seenBetween: number[] = [];
    const probe = () => {
      seenBetween.push(pings);
      if (pings < 2000) setImmediate(probe);
    };
    keepAlive.start();
    setImmediate(probe);
    await eventually(
      () => pings,
      (n) => n === 2000,
    );
    // Then each was pinged once, and the other work ran while the sweep was half done
    expect([...registry.all()].every((s) => s.awaitingPong && s.pingAt === 100_000)).toBe(true);
    expect(seenBetween.some((n) => n > 0 && n < 2000)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(pings).toBe(2000);
  });
});
