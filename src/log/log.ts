import type { FeedPosition, HeadChange } from '../domain/head-state.js';

/**
 * The write log as the projectors see it: ordered partitions of records with offsets. Two
 * implementations share these semantics: Kafka (kafkajs) and the embedded SQLite log.
 */

export interface LogRecord {
  readonly partition: number;
  readonly offset: number;
  readonly key: string | null;
  readonly value: Buffer | null;
  readonly headers: Readonly<Record<string, string>>;
  /** Log append time in ms since the epoch. */
  readonly timestamp: number;
}

export interface AppendRecord {
  readonly partition: number;
  readonly key: string | null;
  readonly value: Buffer;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface LogPosition {
  readonly partition: number;
  readonly offset: number;
}

export interface DeadLetter {
  readonly record: LogRecord;
  readonly reason: string;
  /** The field at fault, when known. */
  readonly field?: string;
}

export interface LogBatch {
  readonly partition: number;
  readonly records: readonly LogRecord[];
}

export interface BatchControl {
  /** Keeps a group membership alive during long batches. */
  heartbeat(): Promise<void>;
  /** False once the consumer is stopping or lost the partition: stop work early. */
  isActive(): boolean;
}

export interface ConsumeOptions {
  /** Consumer group; all members share the partitions. */
  readonly group: string;
  /** Called for each newly assigned partition: the offset to read from. */
  startOffset(partition: number): Promise<number>;
  /** One partition's batches arrive in offset order and never overlap. */
  onBatch(batch: LogBatch, control: BatchControl): Promise<void>;
  /** The partitions this member owns changed; drop caches of the ones it lost. */
  onAssignment?(partitions: readonly number[]): void;
}

export interface LogConsumer {
  /** Resolves once the consumer owns its partitions and reads. */
  ready(): Promise<void>;
  /** Finishes the batch in hand, leaves the group and stops. */
  stop(): Promise<void>;
  /**
   * False while this member is out of its consumer group: not joined yet, crashed and
   * restarting, or stopped (for readiness). Absent where membership cannot be lost.
   */
  isMember?(): boolean;
}

export interface CommandLog {
  /** Name of the commands log; projector offsets are stored under it. */
  readonly topic: string;
  partitionCount(): Promise<number>;
  /** Appends records; resolves with their positions once they are durable. */
  append(records: readonly AppendRecord[]): Promise<LogPosition[]>;
  /** Sends records that cannot be applied to the dead-letter log, with the reason. */
  deadLetter(letters: readonly DeadLetter[]): Promise<void>;
  consume(options: ConsumeOptions): LogConsumer;
  /** Highest offset + 1 per partition (what a caught-up consumer would read next). */
  endOffsets(): Promise<number[]>;
  /** Lowest offset still held per partition: 0 until retention deleted records. */
  startOffsets(): Promise<number[]>;
  close(): Promise<void>;
}

export interface Subscription {
  close(): Promise<void>;
  /** False once the subscriber has crashed or closed (for readiness); absent: always true. */
  isActive?(): boolean;
}

/** The heads stream: head changes from projectors to hubs (and read caches). */
/**
 * Hears the heads stream: each call brings changes and the positions published after them (see
 * {@link FeedPosition}); take in the changes first.
 */
export type ChangeListener = (
  changes: readonly HeadChange[],
  positions: readonly FeedPosition[],
) => void;

export interface SubscribeOptions {
  /**
   * The subscription may have missed records (its consumer restarted and resumed at the end):
   * whatever was learnt from it before may be stale.
   */
  readonly onGap?: () => void;
}

export interface ChangeFeed {
  /**
   * Announces changes; `position`, when given, follows them: every commit it covers has been
   * announced once this resolves. All changes of one call belong to the position's partition.
   */
  publish(changes: readonly HeadChange[], position?: FeedPosition): Promise<void>;
  /** Delivers changes published after the returned promise resolves. */
  subscribe(onChanges: ChangeListener, options?: SubscribeOptions): Promise<Subscription>;
  close(): Promise<void>;
}

/** Header names MiniPush sets on records it writes. */
export const HEADERS = {
  /** `<partition>:<offset>` of the record a forwarded record was re-routed from. */
  origin: 'minipush-origin',
  /** Why a record was dead-lettered. */
  deadLetterReason: 'minipush-dlq-reason',
  deadLetterField: 'minipush-dlq-field',
  deadLetterSource: 'minipush-dlq-source',
  deadLetterTime: 'minipush-dlq-time',
  traceparent: 'traceparent',
  tracestate: 'tracestate',
} as const;

/** The headers of a dead-lettered copy of a record of `topic`: its own, and why it failed. */
export function deadLetterHeaders(
  letter: DeadLetter,
  topic: string,
  now: number,
): Record<string, string> {
  const { record, reason, field } = letter;
  return {
    ...record.headers,
    [HEADERS.deadLetterReason]: reason,
    ...(field ? { [HEADERS.deadLetterField]: field } : {}),
    [HEADERS.deadLetterSource]: `${topic}:${record.partition}:${record.offset}`,
    [HEADERS.deadLetterTime]: String(now),
  };
}

/** What a log's consumer implementation offers; {@link ownedConsumer} hands it out. */
interface ConsumerImpl {
  start(): void;
  ready(): Promise<void>;
  stop(): Promise<void>;
  isMember?(): boolean;
}

/** Starts a consumer and hands it out as a {@link LogConsumer} that leaves `owned` on stop. */
export function ownedConsumer<C extends ConsumerImpl>(owned: Set<C>, consumer: C): LogConsumer {
  owned.add(consumer);
  consumer.start();
  return {
    ready: () => consumer.ready(),
    stop: async () => {
      owned.delete(consumer);
      await consumer.stop();
    },
    ...(consumer.isMember ? { isMember: () => consumer.isMember!() } : {}),
  };
}

/**
 * Head changes per heads record at most: a projector's slice announces its users in a few
 * records, not one per user (kafkajs' encode and decode cost per record, on both ends of the
 * stream), and a record stays near 100 KB, well under Kafka's 1 MB message limit.
 */
export const HEAD_CHANGES_PER_RECORD = 500;

/** A heads record of changes, `{"changes":[…]}`: what projectors write. */
export function encodeHeadChanges(changes: readonly HeadChange[]): Buffer {
  return Buffer.from(JSON.stringify({ changes }));
}

/** The values of the heads records announcing `changes`, {@link HEAD_CHANGES_PER_RECORD} each. */
export function headChangesRecords(changes: readonly HeadChange[]): Buffer[] {
  const values: Buffer[] = [];
  for (let i = 0; i < changes.length; i += HEAD_CHANGES_PER_RECORD)
    values.push(encodeHeadChanges(changes.slice(i, i + HEAD_CHANGES_PER_RECORD)));
  return values;
}

/**
 * One user's change as its own record, `{"uid":…}`: what builds before
 * {@link encodeHeadChanges} wrote, and still read.
 */
export function encodeHeadChange(change: HeadChange): Buffer {
  return Buffer.from(JSON.stringify(change));
}

/**
 * A position on the heads stream: a record of its own, keyed per partition (compacted). Its
 * field is `announced`: builds before batched changes read `position`, ignored changes records
 * and would have taken a position over changes they never saw as exact.
 */
export function encodeFeedPosition(position: FeedPosition): Buffer {
  return Buffer.from(JSON.stringify({ announced: position }));
}

export function feedPositionKey(partition: number): string {
  return `minipush-position-${partition}`;
}

/** The key of a projector's changes records: one per heads partition, compacted like positions. */
export function headChangesKey(partition: number): string {
  return `minipush-changes-${partition}`;
}

function isFeedPosition(value: unknown): value is FeedPosition {
  const position = value as Partial<FeedPosition> | null;
  return (
    typeof position?.partition === 'number' &&
    typeof position.offset === 'number' &&
    typeof position.epoch === 'string'
  );
}

/** A change as written, or null; one from a build before seen and archived states is completed. */
function headChangeOf(value: unknown): HeadChange | null {
  const parsed = value as Partial<HeadChange> | null;
  if (typeof parsed?.uid !== 'number' || typeof parsed.headSeq !== 'number') return null;
  const change = parsed as HeadChange;
  // Before seen and archived states, nothing was seen but what was read.
  if (typeof parsed.unseenCount !== 'number' || typeof parsed.archivedCount !== 'number')
    return { ...change, unseenCount: change.unreadCount, archivedCount: 0 };
  return change;
}

/**
 * A heads record: changes (a projector's batch, or one user's from an older build), a position,
 * or neither (junk, or from a newer build).
 */
export function decodeHeadsRecord(
  value: Buffer | null,
): { changes: HeadChange[] } | { position: FeedPosition } | null {
  if (value === null) return null;
  try {
    const parsed = JSON.parse(value.toString('utf8')) as {
      changes?: unknown;
      announced?: unknown;
      position?: unknown;
    };
    if (isFeedPosition(parsed.announced)) return { position: parsed.announced };
    // `position` records come from builds that wrote one record per change: exact as before.
    if (isFeedPosition(parsed.position)) return { position: parsed.position };
    if (Array.isArray(parsed.changes)) {
      const changes: HeadChange[] = [];
      for (const item of parsed.changes) {
        const change = headChangeOf(item);
        if (change) changes.push(change);
      }
      return { changes };
    }
    const change = headChangeOf(parsed);
    return change ? { changes: [change] } : null;
  } catch {
    return null;
  }
}
