import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import Sqlite from 'better-sqlite3';
import type { FeedPosition, HeadChange } from '../domain/head-state.js';
import type { Logger } from '../logger.js';
import {
  deadLetterHeaders,
  ownedConsumer,
  type AppendRecord,
  type ChangeFeed,
  type ChangeListener,
  type CommandLog,
  type ConsumeOptions,
  type DeadLetter,
  type LogConsumer,
  type LogPosition,
  type LogRecord,
  type Subscription,
} from './log.js';

interface RecordRow {
  offset: number;
  key: string | null;
  value: Buffer | null;
  headers: string | null;
  timestamp: number;
}

export interface EmbeddedLogOptions {
  /** Folder holding `log.db`. */
  readonly dataDir: string;
  readonly topic: string;
  readonly deadLetterTopic: string;
  readonly partitions: number;
  /** Records older than this many ms are deleted; -1 keeps them forever. */
  readonly retentionMs: number;
  readonly log: Logger;
  readonly batchSize?: number;
}

/**
 * A durable partitioned log in its own SQLite file, with Kafka's semantics as the projectors use
 * them: ordered offsets per partition, append acknowledged once committed (so a killed process
 * loses nothing acknowledged), consumers resuming from a position they choose.
 */
export class EmbeddedCommandLog implements CommandLog {
  readonly topic: string;
  private readonly db: Sqlite.Database;
  private readonly nextOffsets: number[] = [];
  private readonly appended = new EventEmitter();
  private readonly consumers = new Set<EmbeddedConsumer>();
  private readonly insert: Sqlite.Statement;
  private readonly insertPartition: Sqlite.Statement;
  private readonly selectBatch: Sqlite.Statement<[string, number, number, number], RecordRow>;
  private retentionTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private pending: Array<{
    readonly records: readonly AppendRecord[];
    readonly resolve: (positions: LogPosition[]) => void;
    readonly reject: (err: unknown) => void;
  }> = [];
  private flushScheduled = false;

  constructor(private readonly options: EmbeddedLogOptions) {
    this.topic = options.topic;
    fs.mkdirSync(options.dataDir, { recursive: true });
    this.db = new Sqlite(path.join(options.dataDir, 'log.db'));
    this.db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode survives a killed process; only an OS crash may lose the last commits.
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS log_topics (
        topic TEXT PRIMARY KEY,
        partitions INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS log_partitions (
        topic TEXT NOT NULL,
        partition INTEGER NOT NULL,
        next_offset INTEGER NOT NULL,
        PRIMARY KEY (topic, partition)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS log_records (
        topic TEXT NOT NULL,
        partition INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        key TEXT,
        value BLOB,
        headers TEXT,
        timestamp INTEGER NOT NULL,
        PRIMARY KEY (topic, partition, offset)
      ) WITHOUT ROWID;
    `);
    this.ensureTopic(options.topic, options.partitions);
    this.ensureTopic(options.deadLetterTopic, 1);
    // Next offsets live in their own rows so retention emptying a partition never reuses one.
    const rows = this.db
      .prepare<[string], { partition: number; next_offset: number }>(
        'SELECT partition, next_offset FROM log_partitions WHERE topic = ?',
      )
      .all(this.topic);
    for (let p = 0; p < options.partitions; p++) this.nextOffsets[p] = 0;
    for (const row of rows) this.nextOffsets[row.partition] = row.next_offset;
    this.insertPartition = this.db.prepare(
      'INSERT INTO log_partitions (topic, partition, next_offset) VALUES (?, ?, ?) ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset',
    );
    this.insert = this.db.prepare(
      'INSERT INTO log_records (topic, partition, offset, key, value, headers, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.selectBatch = this.db.prepare(
      'SELECT offset, key, value, headers, timestamp FROM log_records WHERE topic = ? AND partition = ? AND offset >= ? ORDER BY offset LIMIT ?',
    );
    this.appended.setMaxListeners(0);
    if (options.retentionMs > 0) {
      this.retentionTimer = setInterval(() => this.applyRetention(), 60_000);
      this.retentionTimer.unref();
    }
  }

  private ensureTopic(topic: string, partitions: number): void {
    const row = this.db
      .prepare<[string], { partitions: number }>(
        'SELECT partitions FROM log_topics WHERE topic = ?',
      )
      .get(topic);
    if (!row) {
      this.db
        .prepare('INSERT INTO log_topics (topic, partitions) VALUES (?, ?)')
        .run(topic, partitions);
    } else if (row.partitions !== partitions) {
      throw new Error(
        `the embedded log ${topic} has ${row.partitions} partitions but MINIPUSH_PARTITIONS is ${partitions}; ` +
          'partitions are fixed once the log exists (use the original value or a new data folder)',
      );
    }
  }

  partitionCount(): Promise<number> {
    return Promise.resolve(this.options.partitions);
  }

  /**
   * Appends are group-committed: every append of one event-loop turn goes into one SQLite
   * transaction (like Kafka's linger), and each resolves once that transaction committed.
   */
  append(records: readonly AppendRecord[]): Promise<LogPosition[]> {
    if (this.closed) return Promise.reject(new Error('the embedded log is closed'));
    // Nothing to commit: answering now spares the caller a turn of the event loop.
    if (records.length === 0) return Promise.resolve([]);
    for (const r of records) {
      if (r.partition < 0 || r.partition >= this.options.partitions) {
        return Promise.reject(new Error(`partition ${r.partition} does not exist`));
      }
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ records, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const group = this.pending;
    this.pending = [];
    if (group.length === 0) return;
    if (this.closed) {
      for (const append of group) append.reject(new Error('the embedded log is closed'));
      return;
    }
    const saved = [...this.nextOffsets];
    const now = Date.now();
    const touched = new Set<number>();
    let positions: LogPosition[][];
    try {
      positions = this.db.transaction(() => {
        const out = group.map(({ records }) =>
          records.map((r) => {
            const offset = this.nextOffsets[r.partition]!;
            this.insert.run(
              this.topic,
              r.partition,
              offset,
              r.key,
              r.value,
              r.headers ? JSON.stringify(r.headers) : null,
              now,
            );
            this.nextOffsets[r.partition] = offset + 1;
            touched.add(r.partition);
            return { partition: r.partition, offset };
          }),
        );
        for (const p of touched) this.insertPartition.run(this.topic, p, this.nextOffsets[p]);
        return out;
      })();
    } catch (err) {
      this.nextOffsets.splice(0, saved.length, ...saved);
      for (const append of group) append.reject(err);
      return;
    }
    // Only the partitions that grew: waking all of them would read every partition per append.
    this.appended.emit('append', touched);
    group.forEach((append, i) => append.resolve(positions[i]!));
  }

  deadLetter(letters: readonly DeadLetter[]): Promise<void> {
    if (letters.length === 0) return Promise.resolve();
    const now = Date.now();
    const next = this.db
      .prepare<[string], { next: number | null }>(
        'SELECT MAX(offset) + 1 AS next FROM log_records WHERE topic = ? AND partition = 0',
      )
      .get(this.options.deadLetterTopic);
    let offset = next?.next ?? 0;
    this.db.transaction(() => {
      for (const letter of letters) {
        const { record } = letter;
        const headers = deadLetterHeaders(letter, this.topic, now);
        this.insert.run(
          this.options.deadLetterTopic,
          0,
          offset++,
          record.key,
          record.value,
          JSON.stringify(headers),
          now,
        );
      }
    })();
    return Promise.resolve();
  }

  /** Dead-lettered records, oldest first, for `minipush dlq` and tests. */
  readDeadLetters(limit = 100, fromOffset = 0): LogRecord[] {
    return this.read(this.options.deadLetterTopic, 0, fromOffset, limit);
  }

  /** Records of one partition from an offset, for tests and tools. */
  read(topic: string, partition: number, fromOffset: number, limit: number): LogRecord[] {
    return this.selectBatch.all(topic, partition, fromOffset, limit).map((row) => ({
      partition,
      offset: row.offset,
      key: row.key,
      value: row.value,
      headers: row.headers ? (JSON.parse(row.headers) as Record<string, string>) : {},
      timestamp: row.timestamp,
    }));
  }

  consume(options: ConsumeOptions): LogConsumer {
    return ownedConsumer(
      this.consumers,
      new EmbeddedConsumer(
        this,
        options,
        this.options.batchSize ?? 1000,
        this.appended,
        this.options.log,
      ),
    );
  }

  endOffsets(): Promise<number[]> {
    return Promise.resolve([...this.nextOffsets]);
  }

  startOffsets(): Promise<number[]> {
    const rows = this.db
      .prepare<[string], { partition: number; low: number }>(
        'SELECT partition, MIN(offset) AS low FROM log_records WHERE topic = ? GROUP BY partition',
      )
      .all(this.topic);
    // A partition with no records left starts at its end (all of it expired, or never written).
    const out = [...this.nextOffsets];
    for (const row of rows) out[row.partition] = row.low;
    return Promise.resolve(out);
  }

  private applyRetention(): void {
    const cutoff = Date.now() - this.options.retentionMs;
    const result = this.db
      .prepare('DELETE FROM log_records WHERE topic = ? AND timestamp < ?')
      .run(this.topic, cutoff);
    if (result.changes > 0) {
      this.options.log.info({ deleted: result.changes }, 'embedded log retention removed records');
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.consumers].map((c) => c.stop()));
    this.consumers.clear();
    // Appends already accepted are committed, not dropped.
    this.flush();
    this.closed = true;
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    this.appended.emit('append');
    this.db.close();
  }
}

/** Reads every partition in its own loop, woken by appends to it. */
class EmbeddedConsumer {
  private running = false;
  private loops: Promise<void>[] = [];
  private wakers = new Map<number, () => void>();
  private readonly onAppend = (partitions?: ReadonlySet<number>) => {
    for (const [partition, wake] of [...this.wakers]) {
      if (!partitions || partitions.has(partition)) wake();
    }
  };

  constructor(
    private readonly log: EmbeddedCommandLog,
    private readonly options: ConsumeOptions,
    private readonly batchSize: number,
    private readonly appended: EventEmitter,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.running = true;
    this.appended.on('append', this.onAppend);
    void this.log.partitionCount().then((count) => {
      const partitions = Array.from({ length: count }, (_, p) => p);
      this.options.onAssignment?.(partitions);
      this.loops = partitions.map((p) => this.loop(p));
    });
  }

  ready(): Promise<void> {
    return Promise.resolve();
  }

  private async loop(partition: number): Promise<void> {
    let position: number | null = null;
    while (this.running) {
      try {
        position ??= await this.options.startOffset(partition);
        const records = this.log.read(this.log.topic, partition, position, this.batchSize);
        if (records.length === 0) {
          await this.waitForAppend(partition, 1000);
          // Let the appends already queued behind this one land first, so a burst of single
          // appends (REST publishes) is applied as one batch instead of one transaction each.
          await new Promise((resolve) => setImmediate(resolve));
          continue;
        }
        await this.options.onBatch(
          { partition, records },
          { heartbeat: () => Promise.resolve(), isActive: () => this.running },
        );
        position = records[records.length - 1]!.offset + 1;
      } catch (err) {
        // The handler failed (store busy or closing): ask for the position again after a pause.
        this.logger.warn({ err, partition }, 'embedded consumer batch failed; retrying');
        position = null;
        if (this.running) await this.waitForAppend(partition, 500, true);
      }
    }
  }

  private waitForAppend(partition: number, timeoutMs: number, timerOnly = false): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.wakers.get(partition) === done) this.wakers.delete(partition);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      if (!timerOnly) this.wakers.set(partition, done);
    });
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.appended.off('append', this.onAppend);
    for (const wake of [...this.wakers.values()]) wake();
    await Promise.all(this.loops);
  }
}

/** Head changes delivered in process to every subscriber. */
export class LocalChangeFeed implements ChangeFeed {
  private readonly handlers = new Set<ChangeListener>();

  publish(changes: readonly HeadChange[], position?: FeedPosition): Promise<void> {
    if (changes.length > 0 || position) {
      const positions = position ? [position] : [];
      for (const handler of [...this.handlers]) handler(changes, positions);
    }
    return Promise.resolve();
  }

  subscribe(onChanges: ChangeListener): Promise<Subscription> {
    this.handlers.add(onChanges);
    return Promise.resolve({
      close: () => {
        this.handlers.delete(onChanges);
        return Promise.resolve();
      },
    });
  }

  close(): Promise<void> {
    this.handlers.clear();
    return Promise.resolve();
  }
}
