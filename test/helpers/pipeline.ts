import { setTimeout as sleep } from 'node:timers/promises';
import type { Knex } from 'knex';
import { CommandWriter } from '../../src/commands/command-writer.js';
import type { CommandRecord } from '../../src/commands/command-record.js';
import type { Config } from '../../src/config.js';
import type { Backend } from '../../src/backend.js';
import { EmbeddedCommandLog } from '../../src/log/embedded-log.js';
import type { HeadChange } from '../../src/domain/head-state.js';
import type { LogPosition, LogRecord } from '../../src/log/log.js';
import { createLogger } from '../../src/logger.js';
import { TtlCleaner } from '../../src/projections/ttl-cleaner.js';
import { startRuntime, type Runtime } from '../../src/runtime.js';
import { typed } from '../../src/store/database.js';

export async function startPipeline(config: Config, now?: () => number): Promise<Runtime> {
  return startRuntime({
    config,
    logger: createLogger(config.logLevel),
    prepare: true,
    ...(now ? { now } : {}),
  });
}

/** Appends a command the way the API does and waits until it is projected. */
export async function send(runtime: Runtime, command: CommandRecord): Promise<LogPosition[]> {
  const positions = await new CommandWriter(runtime.backend.log).write(command);
  await waitApplied(runtime, positions);
  return positions;
}

export async function waitApplied(
  runtime: Runtime,
  positions: readonly LogPosition[],
  timeoutMs = 30_000,
): Promise<void> {
  const ok = await runtime.progress.waitFor(positions, timeoutMs);
  if (!ok)
    throw new Error(`positions ${JSON.stringify(positions)} not projected within ${timeoutMs} ms`);
}

/** Waits until every partition's projection reached the end of the log. */
export async function waitCaughtUp(runtime: Runtime, timeoutMs = 30_000): Promise<void> {
  const ends = await runtime.backend.log.endOffsets();
  const positions = ends.flatMap((end, partition) =>
    end > 0 ? [{ partition, offset: end - 1 }] : [],
  );
  await waitApplied(runtime, positions, timeoutMs);
}

/**
 * Waits until the projection reached an end of the log that stays put while we look: records
 * re-routed by the projector land on other partitions after the batch that forwards them.
 */
export async function waitSettled(runtime: Runtime, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const before = await runtime.backend.log.endOffsets();
    await waitCaughtUp(runtime, Math.max(1, deadline - Date.now()));
    const after = await runtime.backend.log.endOffsets();
    if (after.every((end, p) => end === before[p])) return;
  }
}

export async function feedOf(
  db: Knex,
  uid: number,
): Promise<Array<{ seq: number; event_id: string }>> {
  return await typed<
    Array<{
      seq: number;
      event_id: string;
    }>
  >(db('user_events').where({ uid }).orderBy('seq').select('seq', 'event_id'));
}

/** Collects head changes from the runtime's change feed. */
export async function watchChanges(
  runtime: Runtime,
): Promise<{ changes: HeadChange[]; close(): Promise<void> }> {
  const changes: HeadChange[] = [];
  const subscription = await runtime.backend.feed.subscribe((batch) => changes.push(...batch));
  return { changes, close: () => subscription.close() };
}

export async function eventually<T>(
  fn: () => Promise<T> | T,
  check: (value: T) => boolean,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T = await fn();
  while (!check(last)) {
    if (Date.now() > deadline)
      throw new Error(`condition not met in ${timeoutMs} ms; last value ${JSON.stringify(last)}`);
    await sleep(50);
    last = await fn();
  }
  return last;
}

/** Reads dead letters matching `predicate` until `expected` arrived, in log order. */
export async function readDeadLetters(
  backend: Backend,
  predicate: (letter: LogRecord) => boolean,
  expected: number,
  timeoutMs = 20_000,
): Promise<LogRecord[]> {
  if (backend.log instanceof EmbeddedCommandLog) {
    const log = backend.log;
    return eventually(
      () => log.readDeadLetters(100_000).filter(predicate),
      (letters) => letters.length >= expected,
      timeoutMs,
    );
  }
  const kafka = backend.kafka!;
  const consumer = kafka.consumer({
    groupId: `${backend.topics.deadLetters}.reader.${Date.now()}`,
  });
  const letters: LogRecord[] = [];
  await consumer.connect();
  await consumer.subscribe({ topics: [backend.topics.deadLetters], fromBeginning: true });
  await consumer.run({
    eachMessage: ({ partition, message }) => {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(message.headers ?? {})) {
        if (value !== undefined) headers[name] = String(Array.isArray(value) ? value[0] : value);
      }
      const letter = {
        partition,
        offset: Number(message.offset),
        key: message.key?.toString() ?? null,
        value: message.value,
        headers,
        timestamp: Number(message.timestamp),
      };
      if (predicate(letter)) letters.push(letter);
      return Promise.resolve();
    },
  });
  try {
    return await eventually(
      () => letters,
      (l) => l.length >= expected,
      timeoutMs,
    );
  } finally {
    await consumer.disconnect();
  }
}

/**
 * Runs one TTL cleaner pass as if a minute past the TTL had gone by: every event published so
 * far expires. Small batches, so the pass loops as a busy cleaner would.
 */
export async function expireEverything(runtime: Runtime, ttlMs: number): Promise<void> {
  await new TtlCleaner({
    db: runtime.backend.db,
    log: runtime.backend.log,
    progress: runtime.progress,
    waitTimeoutMs: 60_000,
    ttlMs,
    batchSize: 2,
    intervalMs: 60_000,
    logger: createLogger('warn'),
    now: () => Date.now() + ttlMs + 60_000,
  }).runOnce();
}
