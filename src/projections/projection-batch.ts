import type { Knex } from 'knex';
import { decodeBitmap, encodeBitmap, unreadCount, type ReadBitmap } from '../domain/read-bitmap.js';
import type { HeadChange } from '../domain/head-state.js';
import type { LogRecord } from '../log/log.js';
import { dialectOf } from '../store/database.js';
import { typed } from '../store/database.js';

/** A user's projected state as one batch sees and changes it. */
export interface UserState {
  readonly uid: number;
  headSeq: number;
  floorSeq: number;
  /** Expiry clock: log time of the newest delivery, never decreasing. */
  lastTs: number;
  readVersion: number;
  /** Stored bitmap bytes; decoded on first use. */
  storedBitmap: Buffer | null;
  bitmap: ReadBitmap | null;
  exists: boolean;
  headChanged: boolean;
  readChanged: boolean;
  /** Newest record that touched this user, for the notification's latency and trace. */
  lastRecord: LogRecord | null;
}

export interface Delivery {
  readonly uid: number;
  readonly seq: number;
  readonly eventId: string;
  readonly ts: number;
}

export interface EventRow {
  readonly eventId: string;
  body: string;
  createTime: number;
  sender: number | null;
  ts: number;
}

/**
 * Whether `a`'s content wins over `b`'s for one event id published twice with different content
 * (a retry stamped with a new createTime, or a reused id): the smaller (createTime, body bytes,
 * sender) wins. Partitions commit concurrently, so keeping whichever came first would depend on
 * timing and a rebuild could store other values; this order depends on the log alone. The SQL
 * upserts in {@link ProjectionBatch.write} apply the same order.
 */
export function precedes(
  a: Pick<EventRow, 'createTime' | 'body' | 'sender'>,
  b: Pick<EventRow, 'createTime' | 'body' | 'sender'>,
): boolean {
  if (a.createTime !== b.createTime) return a.createTime < b.createTime;
  const bodies = Buffer.compare(Buffer.from(a.body), Buffer.from(b.body));
  if (bodies !== 0) return bodies < 0;
  return (a.sender ?? -1) < (b.sender ?? -1);
}

export interface CommandResult {
  readonly partition: number;
  readonly offset: number;
  readonly changed: number;
  /** Log time of the command: what the row is aged by, so a rebuild writes the same value. */
  readonly logTime: number;
}

const CHUNK = 500;

function chunks<T>(items: readonly T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function toBuffer(value: unknown): Buffer | null {
  if (value === null || value === undefined) return null;
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value);
  return null;
}

// The order of precedes(). MySQL assigns left to right and later expressions see the new
// values, so sender goes first (its test needs the old body and createTime) and createTime last;
// SQLite evaluates every expression on the old row.
const MYSQL_EVENT_MERGE = (trx: Knex.Transaction) => ({
  ts: trx.raw('GREATEST(ts, VALUES(ts))'),
  sender: trx.raw(
    'IF((VALUES(create_time), CAST(VALUES(body) AS BINARY), IFNULL(VALUES(sender) + 1, 0)) < ' +
      '(create_time, CAST(body AS BINARY), IFNULL(sender + 1, 0)), VALUES(sender), sender)',
  ),
  body: trx.raw(
    'IF((VALUES(create_time), CAST(VALUES(body) AS BINARY)) < ' +
      '(create_time, CAST(body AS BINARY)), VALUES(body), body)',
  ),
  create_time: trx.raw('LEAST(create_time, VALUES(create_time))'),
});

const SQLITE_EVENT_MERGE = (trx: Knex.Transaction) => ({
  ts: trx.raw('MAX(ts, excluded.ts)'),
  sender: trx.raw(
    'CASE WHEN (excluded.create_time, excluded.body, IFNULL(excluded.sender + 1, 0)) < ' +
      '(create_time, body, IFNULL(sender + 1, 0)) THEN excluded.sender ELSE sender END',
  ),
  body: trx.raw(
    'CASE WHEN (excluded.create_time, excluded.body) < (create_time, body) ' +
      'THEN excluded.body ELSE body END',
  ),
  create_time: trx.raw('MIN(create_time, excluded.create_time)'),
});

/**
 * Everything one projector batch reads and writes. Loads the touched users and the dedupe keys
 * with a few set queries, lets the projections change state in memory, then writes all rows
 * with multi-row statements in the caller's transaction.
 */
export class ProjectionBatch {
  readonly users = new Map<number, UserState>();
  readonly deliveries: Delivery[] = [];
  readonly events = new Map<string, EventRow>();
  readonly results: CommandResult[] = [];
  private readonly delivered = new Set<string>();

  constructor(private readonly db: Knex) {}

  static deliveryKey(eventId: string, uid: number): string {
    return `${eventId}\u0000${uid}`;
  }

  /** Reads the users' rows and which of the (event, uid) pairs were delivered before. */
  async load(uids: ReadonlySet<number>, eventIds: ReadonlySet<string>): Promise<void> {
    // Independent reads on two pooled connections: a batch waits for the slower, not the sum.
    await Promise.all([this.loadUsers(uids), this.loadDelivered(uids, eventIds)]);
  }

  private async loadUsers(uids: ReadonlySet<number>): Promise<void> {
    for (const part of chunks([...uids])) {
      const rows = await typed<
        Array<{
          uid: number;
          head_seq: number;
          floor_seq: number;
          last_ts: number | string;
          read_bitmap: unknown;
          read_version: number | string;
        }>
      >(
        this.db('user_states')
          .select('uid', 'head_seq', 'floor_seq', 'last_ts', 'read_bitmap', 'read_version')
          .whereIn('uid', part),
      );
      for (const row of rows) {
        this.users.set(row.uid, {
          uid: row.uid,
          headSeq: row.head_seq,
          floorSeq: row.floor_seq,
          lastTs: Number(row.last_ts),
          readVersion: Number(row.read_version),
          storedBitmap: toBuffer(row.read_bitmap),
          bitmap: null,
          exists: true,
          headChanged: false,
          readChanged: false,
          lastRecord: null,
        });
      }
    }
  }

  private async loadDelivered(
    uids: ReadonlySet<number>,
    eventIds: ReadonlySet<string>,
  ): Promise<void> {
    for (const part of chunks([...eventIds])) {
      const rows = await typed<
        Array<{
          event_id: string;
          uid: number;
        }>
      >(this.db('user_events').select('event_id', 'uid').whereIn('event_id', part));
      for (const row of rows) {
        if (uids.has(row.uid))
          this.delivered.add(ProjectionBatch.deliveryKey(row.event_id, row.uid));
      }
    }
  }

  /** The user's state, created empty (head 0, floor 1) for a first-time user. */
  user(uid: number): UserState {
    let state = this.users.get(uid);
    if (!state) {
      state = {
        uid,
        headSeq: 0,
        floorSeq: 1,
        lastTs: 0,
        readVersion: 0,
        storedBitmap: null,
        bitmap: null,
        exists: false,
        headChanged: false,
        readChanged: false,
        lastRecord: null,
      };
      this.users.set(uid, state);
    }
    return state;
  }

  bitmapOf(state: UserState): ReadBitmap {
    state.bitmap ??= decodeBitmap(state.storedBitmap);
    return state.bitmap;
  }

  wasDelivered(eventId: string, uid: number): boolean {
    return this.delivered.has(ProjectionBatch.deliveryKey(eventId, uid));
  }

  markDelivered(eventId: string, uid: number): void {
    this.delivered.add(ProjectionBatch.deliveryKey(eventId, uid));
  }

  /** Writes every change of the batch; call inside the offset-fenced transaction. */
  async write(trx: Knex.Transaction, topic: string): Promise<void> {
    const mysql = dialectOf(this.db) === 'mysql';
    // Sorted so concurrent partitions upserting the same events lock rows in one order.
    const events = [...this.events.values()].sort((a, b) =>
      a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0,
    );
    for (const part of chunks(events)) {
      await trx('events')
        .insert(
          part.map((e) => ({
            event_id: e.eventId,
            body: e.body,
            create_time: e.createTime,
            sender: e.sender,
            ts: e.ts,
          })),
        )
        .onConflict('event_id')
        .merge(mysql ? MYSQL_EVENT_MERGE(trx) : SQLITE_EVENT_MERGE(trx));
    }
    for (const part of chunks(this.deliveries)) {
      await trx('user_events').insert(
        part.map((d) => ({ uid: d.uid, seq: d.seq, event_id: d.eventId, ts: d.ts })),
      );
    }
    // One upsert for every changed user, in ascending uid order: rows are locked in the order
    // the TTL cleaner locks them, so the two cannot deadlock over them. A user whose read state
    // did not change carries no bitmap: the merge keeps the stored one unless the read version
    // moved (MySQL assigns left to right, so the bitmap goes before the version).
    const changed = [...this.users.values()]
      .filter((state) => state.readChanged || state.headChanged)
      .sort((a, b) => a.uid - b.uid);
    const merge = mysql
      ? {
          head_seq: trx.raw('VALUES(head_seq)'),
          last_ts: trx.raw('VALUES(last_ts)'),
          read_bitmap: trx.raw(
            'IF(VALUES(read_version) <> read_version, VALUES(read_bitmap), read_bitmap)',
          ),
          read_version: trx.raw('VALUES(read_version)'),
        }
      : {
          head_seq: trx.raw('excluded.head_seq'),
          last_ts: trx.raw('excluded.last_ts'),
          read_bitmap: trx.raw(
            'CASE WHEN excluded.read_version <> read_version THEN excluded.read_bitmap ELSE read_bitmap END',
          ),
          read_version: trx.raw('excluded.read_version'),
        };
    for (const part of chunks(changed, 200)) {
      await trx('user_states')
        .insert(
          part.map((s) => {
            const withBitmap = s.readChanged || !s.exists;
            const bitmap = withBitmap ? s.bitmap : null;
            if (bitmap && s.floorSeq > 1) bitmap.removeRange(0, s.floorSeq);
            return {
              uid: s.uid,
              head_seq: s.headSeq,
              floor_seq: s.floorSeq,
              last_ts: s.lastTs,
              // Nothing read is always null, never the encoding of an empty bitmap, whether or
              // not a batch happened to decode it: the row must not depend on batch boundaries.
              read_bitmap: !withBitmap
                ? null
                : !bitmap
                  ? s.storedBitmap
                  : bitmap.isEmpty
                    ? null
                    : encodeBitmap(bitmap),
              read_version: s.readVersion,
            };
          }),
        )
        .onConflict('uid')
        .merge(merge);
    }
    for (const part of chunks(this.results)) {
      await trx('command_results')
        .insert(
          part.map((r) => ({
            topic,
            log_partition: r.partition,
            log_offset: r.offset,
            changed: r.changed,
            created_at: r.logTime,
          })),
        )
        .onConflict(['topic', 'log_partition', 'log_offset'])
        .ignore();
    }
  }

  /** One notification per user whose head or read state changed. */
  changes(): HeadChange[] {
    const out: HeadChange[] = [];
    for (const state of this.users.values()) {
      if (!state.headChanged && !state.readChanged) continue;
      const record = state.lastRecord;
      out.push({
        uid: state.uid,
        headSeq: state.headSeq,
        floorSeq: state.floorSeq,
        unreadCount: unreadCount(this.bitmapOf(state), state.floorSeq, state.headSeq),
        readVersion: state.readVersion,
        ...(record ? { logTime: record.timestamp } : {}),
        ...(record?.headers.traceparent ? { traceparent: record.headers.traceparent } : {}),
      });
    }
    return out;
  }
}

/** Current head and read state of some users, for re-sending notifications after a restart. */
export async function currentHeads(db: Knex, uids: readonly number[]): Promise<HeadChange[]> {
  const out: HeadChange[] = [];
  for (const part of chunks(uids)) {
    const rows = await typed<
      Array<{
        uid: number;
        head_seq: number;
        floor_seq: number;
        read_bitmap: unknown;
        read_version: number | string;
      }>
    >(
      db('user_states')
        .select('uid', 'head_seq', 'floor_seq', 'read_bitmap', 'read_version')
        .whereIn('uid', part),
    );
    for (const row of rows) {
      out.push({
        uid: row.uid,
        headSeq: row.head_seq,
        floorSeq: row.floor_seq,
        unreadCount: unreadCount(
          decodeBitmap(toBuffer(row.read_bitmap)),
          row.floor_seq,
          row.head_seq,
        ),
        readVersion: Number(row.read_version),
      });
    }
  }
  return out;
}
