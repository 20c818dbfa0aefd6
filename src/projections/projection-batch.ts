import type { Knex } from 'knex';
import {
  INBOX_STATES,
  decodeInboxBitmaps,
  encodeInboxBitmap,
  inboxCounts,
  type InboxBitmaps,
  type InboxCounts,
  type InboxStateName,
} from '../domain/inbox-state.js';
import { decodeBitmap, type ReadBitmap } from '../domain/read-bitmap.js';
import type { HeadChange } from '../domain/head-state.js';
import type { DeadLetter, LogRecord } from '../log/log.js';
import { dialectOf } from '../store/database.js';
import { typed } from '../store/database.js';
import type { ProjectedUser, ProjectedUsers } from './projected-users.js';
import { insertStatement, type SliceStatement } from './statements.js';

/** A user's projected state as one batch sees and changes it. */
export interface UserState {
  readonly uid: number;
  headSeq: number;
  floorSeq: number;
  /** Expiry clock: log time of the newest delivery, never decreasing. */
  lastTs: number;
  /** Grows with every change of the read, seen or archived state. */
  readVersion: number;
  /** Stored bitmap bytes of each state; decoded on first use. */
  readonly stored: Record<InboxStateName, Buffer | null>;
  readonly decoded: Partial<Record<InboxStateName, ReadBitmap>>;
  exists: boolean;
  headChanged: boolean;
  /** The read, seen or archived state changed. */
  stateChanged: boolean;
  /** The floor rose (expired events removed). */
  floorChanged: boolean;
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

/** A publish of an id this partition already holds with other content (body or sender). */
export interface PublishConflict {
  readonly record: LogRecord;
  readonly eventId: string;
  readonly reason: string;
}

export interface CommandResult {
  readonly partition: number;
  readonly offset: number;
  readonly changed: number;
  /** Log time of the command: what the row is aged by, so a rebuild writes the same value. */
  readonly logTime: number;
}

const CHUNK = 500;

/** The user_states column of each state's bitmap. */
export const BITMAP_COLUMNS = INBOX_STATES.map((name) => `${name}_bitmap` as const);

const EVENT_COLUMNS = ['event_id', 'log_partition', 'body', 'create_time', 'sender', 'ts'];
const DELIVERY_COLUMNS = ['uid', 'seq', 'event_id', 'ts'];
const USER_STATE_COLUMNS = [
  'uid',
  'log_partition',
  'head_seq',
  'floor_seq',
  'last_ts',
  ...BITMAP_COLUMNS,
  'read_version',
];
const RESULT_COLUMNS = ['topic', 'log_partition', 'log_offset', 'changed', 'created_at'];

/**
 * The user_states upsert's merge. Bitmaps first: they compare against the stored floor and
 * version before those are set (MySQL assigns left to right).
 */
const USER_STATE_MERGE_MYSQL =
  ' on duplicate key update ' +
  [
    ...BITMAP_COLUMNS.map(
      (c) =>
        `\`${c}\` = IF(VALUES(read_version) <> read_version OR VALUES(floor_seq) > floor_seq, VALUES(${c}), ${c})`,
    ),
    '`log_partition` = VALUES(log_partition)',
    '`head_seq` = VALUES(head_seq)',
    '`floor_seq` = GREATEST(floor_seq, VALUES(floor_seq))',
    '`last_ts` = VALUES(last_ts)',
    '`read_version` = VALUES(read_version)',
  ].join(', ');
const USER_STATE_MERGE_SQLITE =
  ' on conflict (`uid`) do update set ' +
  [
    ...BITMAP_COLUMNS.map(
      (c) =>
        `\`${c}\` = CASE WHEN excluded.read_version <> read_version OR excluded.floor_seq > floor_seq THEN excluded.${c} ELSE ${c} END`,
    ),
    '`log_partition` = excluded.log_partition',
    '`head_seq` = excluded.head_seq',
    '`floor_seq` = MAX(floor_seq, excluded.floor_seq)',
    '`last_ts` = excluded.last_ts',
    '`read_version` = excluded.read_version',
  ].join(', ');

function chunks<T>(items: readonly T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** The row of a user who has none yet: no events, floor 1. */
const NO_ROW: ProjectedUser = {
  headSeq: 0,
  floorSeq: 1,
  lastTs: 0,
  readVersion: 0,
  stored: { read: null, seen: null, archived: null },
};

function stateOf(uid: number, row: ProjectedUser, exists: boolean): UserState {
  return {
    uid,
    headSeq: row.headSeq,
    floorSeq: row.floorSeq,
    lastTs: row.lastTs,
    readVersion: row.readVersion,
    stored: { ...row.stored },
    decoded: {},
    exists,
    headChanged: false,
    stateChanged: false,
    floorChanged: false,
    lastRecord: null,
  };
}

function toBuffer(value: unknown): Buffer | null {
  if (value === null || value === undefined) return null;
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value);
  return null;
}

/**
 * Everything one projector batch of one partition reads and writes. Loads the touched users,
 * this partition's copies of the touched events and, for the events it already holds, their
 * deliveries, with a few set queries; lets the projections change state in memory; then writes
 * all rows with multi-row statements in the caller's transaction.
 */
export class ProjectionBatch {
  readonly users = new Map<number, UserState>();
  readonly deliveries: Delivery[] = [];
  /** This partition's copy of each touched event: stored before, or new in this batch. */
  readonly events = new Map<string, EventRow>();
  /** The events of {@link events} first written by this batch. */
  private readonly newEvents = new Set<string>();
  readonly results: CommandResult[] = [];
  readonly conflicts: PublishConflict[] = [];
  /** Per user, the seqs [from, to) whose deliveries are deleted. */
  private readonly expirations = new Map<number, { from: number; to: number }>();
  private readonly delivered = new Set<string>();
  /** The bitmap bytes {@link statements} writes, per user whose bitmaps it writes. */
  private readonly written = new Map<number, Record<InboxStateName, Buffer | null>>();

  constructor(
    private readonly db: Knex,
    /** The commands partition this batch projects; it owns these event copies and users. */
    readonly partition: number,
  ) {}

  static deliveryKey(eventId: string, uid: number): string {
    return `${eventId}\u0000${uid}`;
  }

  /**
   * Reads the users' rows, this partition's copies of the events, and which (event, uid) pairs
   * were delivered before. A delivery of an event on this partition implies its copy here, so
   * deliveries are looked up only for the events found: for new ones (nearly every publish)
   * there is nothing to look up.
   */
  async load(uids: ReadonlySet<number>, eventIds: ReadonlySet<string>): Promise<void> {
    // Independent reads on two pooled connections: a batch waits for the slower, not the sum.
    await Promise.all([this.loadUsers(uids), this.loadEvents(eventIds)]);
    const held = [...eventIds].filter((id) => this.events.has(id));
    if (held.length > 0) await this.loadDelivered(uids, held);
  }

  /**
   * Takes the users' rows from what this projector committed before and reads only the others,
   * and reads no events at all: every event id is taken as new to this partition. The keys
   * check that when the rows are written: an id the partition already holds fails the insert of
   * its copy with a duplicate key, and the caller then goes again with {@link load}. Nearly
   * every publish carries a new id, so nearly every slice reads nothing.
   */
  async loadOptimistic(uids: ReadonlySet<number>, known: ProjectedUsers): Promise<void> {
    const missing = new Set<number>();
    for (const uid of uids) {
      const user = known.get(uid, this.partition);
      if (user) this.users.set(uid, stateOf(uid, user, true));
      else missing.add(uid);
    }
    if (missing.size > 0) await this.loadUsers(missing);
  }

  /** Every user row this batch read or wrote, as the batch's commit leaves it. */
  *committedUsers(): Iterable<[number, ProjectedUser]> {
    for (const state of this.users.values()) {
      if (!state.exists && !this.changed(state)) continue;
      yield [
        state.uid,
        {
          headSeq: state.headSeq,
          floorSeq: state.floorSeq,
          lastTs: state.lastTs,
          readVersion: state.readVersion,
          stored: this.written.get(state.uid) ?? state.stored,
        },
      ];
    }
  }

  private async loadEvents(eventIds: ReadonlySet<string>): Promise<void> {
    for (const part of chunks([...eventIds])) {
      const rows = await typed<
        Array<{
          event_id: string;
          body: string;
          create_time: number | string;
          sender: number | null;
          ts: number | string;
        }>
      >(
        this.db('events')
          .where('log_partition', this.partition)
          .whereIn('event_id', part)
          .select('event_id', 'body', 'create_time', 'sender', 'ts'),
      );
      for (const row of rows) {
        this.events.set(row.event_id, {
          eventId: row.event_id,
          body: row.body,
          createTime: Number(row.create_time),
          sender: row.sender,
          ts: Number(row.ts),
        });
      }
    }
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
          seen_bitmap: unknown;
          archived_bitmap: unknown;
          read_version: number | string;
        }>
      >(
        this.db('user_states')
          .select('uid', 'head_seq', 'floor_seq', 'last_ts', 'read_version', ...BITMAP_COLUMNS)
          .whereIn('uid', part),
      );
      for (const row of rows) {
        const stored = {
          read: toBuffer(row.read_bitmap),
          seen: toBuffer(row.seen_bitmap),
          archived: toBuffer(row.archived_bitmap),
        };
        const user = {
          headSeq: row.head_seq,
          floorSeq: row.floor_seq,
          lastTs: Number(row.last_ts),
          readVersion: Number(row.read_version),
          stored,
        };
        this.users.set(row.uid, stateOf(row.uid, user, true));
      }
    }
  }

  private async loadDelivered(
    uids: ReadonlySet<number>,
    eventIds: readonly string[],
  ): Promise<void> {
    for (const part of chunks(eventIds)) {
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
      state = stateOf(uid, NO_ROW, false);
      this.users.set(uid, state);
    }
    return state;
  }

  /**
   * The user's bitmap of seqs in `name` state (read by default), decoded on first use. Read and
   * seen are decoded together, before either changes: the row stores seen as "seen, not read".
   */
  bitmapOf(state: UserState, name: InboxStateName = 'read'): ReadBitmap {
    if (name === 'archived')
      return (state.decoded.archived ??= decodeBitmap(state.stored.archived));
    if (!state.decoded.read) {
      const { read, seen } = decodeInboxBitmaps({ ...state.stored, archived: null });
      state.decoded.read = read;
      state.decoded.seen = seen;
    }
    return state.decoded[name]!;
  }

  /**
   * A state's bitmap as the row stores it, trimmed to the stored seqs whenever the floor rises,
   * so stored bitmaps never hold expired seqs. An empty state is always null, never the
   * encoding of an empty bitmap, whether or not a batch happened to decode it: the row must not
   * depend on batch boundaries.
   */
  private storedForm(state: UserState, name: InboxStateName): Buffer | null {
    if (!state.decoded[name]) {
      if (!state.floorChanged || state.stored[name] === null) return state.stored[name];
      this.bitmapOf(state, name);
    }
    const bitmaps = this.bitmapsOf(state);
    if (state.floorSeq > 1) bitmaps[name].removeRange(0, state.floorSeq);
    if (name === 'seen' && state.floorSeq > 1) bitmaps.read.removeRange(0, state.floorSeq);
    return encodeInboxBitmap(name, bitmaps);
  }

  private storedForms(state: UserState): Record<InboxStateName, Buffer | null> {
    return {
      read: this.storedForm(state, 'read'),
      seen: this.storedForm(state, 'seen'),
      archived: this.storedForm(state, 'archived'),
    };
  }

  bitmapsOf(state: UserState): InboxBitmaps {
    return {
      read: this.bitmapOf(state, 'read'),
      seen: this.bitmapOf(state, 'seen'),
      archived: this.bitmapOf(state, 'archived'),
    };
  }

  wasDelivered(eventId: string, uid: number): boolean {
    return this.delivered.has(ProjectionBatch.deliveryKey(eventId, uid));
  }

  markDelivered(eventId: string, uid: number): void {
    this.delivered.add(ProjectionBatch.deliveryKey(eventId, uid));
  }

  /** This partition's copy of an event, if it holds one (stored, or new in this batch). */
  event(eventId: string): EventRow | undefined {
    return this.events.get(eventId);
  }

  /** The first content of an event on this partition; it is never changed afterwards. */
  addEvent(event: EventRow): void {
    this.events.set(event.eventId, event);
    this.newEvents.add(event.eventId);
  }

  conflict(conflict: PublishConflict): void {
    this.conflicts.push(conflict);
  }

  /** Deletes the user's deliveries of seqs [from, to) when the batch is written. */
  expire(uid: number, from: number, to: number): void {
    const earlier = this.expirations.get(uid);
    this.expirations.set(uid, { from: earlier?.from ?? from, to });
  }

  private changed(state: UserState): boolean {
    return state.headChanged || state.stateChanged || state.floorChanged;
  }

  /**
   * The statements that write every change of the batch, in order, not yet run: the caller runs
   * them in the offset-fenced transaction (src/projections/statements.ts), on MySQL in one round
   * trip. `trx` builds them: the transaction, or the store when they travel as text.
   */
  statements(trx: Knex, topic: string): SliceStatement[] {
    const out: SliceStatement[] = [];
    const mysql = dialectOf(this.db) === 'mysql';
    // Only this partition writes its copies, once: a plain insert, no lock on anyone's row.
    const created = [...this.newEvents].map((id) => this.events.get(id)!);
    for (const part of chunks(created)) {
      const values: Knex.Value[] = [];
      for (const e of part)
        values.push(e.eventId, this.partition, e.body, e.createTime, e.sender, e.ts);
      out.push(insertStatement('events', EVENT_COLUMNS, values));
    }
    // Each expired delivery by its primary key (feeds are gap-free from the floor): a range
    // delete would lock the gaps next to it, where other partitions' users insert.
    const expired = [...this.expirations]
      .sort(([a], [b]) => a - b)
      .flatMap(([uid, { from, to }]) =>
        Array.from({ length: Math.max(0, to - from) }, (_, i) => [uid, from + i] as const),
      );
    for (const part of chunks(expired)) {
      const bySeqs = new Map<number, number[]>();
      for (const [uid, seq] of part) {
        const seqs = bySeqs.get(uid);
        if (seqs) seqs.push(seq);
        else bySeqs.set(uid, [seq]);
      }
      out.push(
        trx('user_events')
          .where((where) => {
            for (const [uid, seqs] of bySeqs)
              void where.orWhere((one) => {
                void one.where('uid', uid).whereIn('seq', seqs);
              });
          })
          .delete(),
      );
    }
    for (const part of chunks(this.deliveries)) {
      const values: Knex.Value[] = [];
      for (const d of part) values.push(d.uid, d.seq, d.eventId, d.ts);
      out.push(insertStatement('user_events', DELIVERY_COLUMNS, values));
    }
    // One upsert for every changed user, in ascending uid order, so concurrent partitions lock
    // rows in one order. A user whose states and floor did not change carries no bitmaps: the
    // merge keeps the stored ones unless the read version moved or the floor rose (MySQL
    // assigns left to right, so the bitmaps go before both). Floors only rise, whoever wrote
    // them last.
    const changed = [...this.users.values()]
      .filter((state) => this.changed(state))
      .sort((a, b) => a.uid - b.uid);
    for (const part of chunks(changed, 200)) {
      const values: Knex.Value[] = [];
      for (const s of part) {
        const withBitmaps = s.stateChanged || s.floorChanged || !s.exists;
        // Null bitmaps tell the merge to keep the stored ones.
        const forms = withBitmaps ? this.storedForms(s) : null;
        if (forms) this.written.set(s.uid, forms);
        values.push(s.uid, this.partition, s.headSeq, s.floorSeq, s.lastTs);
        for (const name of INBOX_STATES) values.push(forms?.[name] ?? null);
        values.push(s.readVersion);
      }
      out.push(
        insertStatement('user_states', USER_STATE_COLUMNS, values, {
          suffix: mysql ? USER_STATE_MERGE_MYSQL : USER_STATE_MERGE_SQLITE,
        }),
      );
    }
    for (const part of chunks(this.results)) {
      const values: Knex.Value[] = [];
      for (const r of part) values.push(topic, r.partition, r.offset, r.changed, r.logTime);
      out.push(
        insertStatement(
          'command_results',
          RESULT_COLUMNS,
          values,
          mysql
            ? { verb: 'insert ignore' }
            : { suffix: ' on conflict (`topic`, `log_partition`, `log_offset`) do nothing' },
        ),
      );
    }
    for (const part of chunks(this.conflicts)) {
      out.push(
        trx('publish_conflicts')
          .insert(
            part.map((c) => ({
              topic,
              log_partition: c.record.partition,
              log_offset: c.record.offset,
              event_id: c.eventId,
              reason: c.reason,
              created_at: c.record.timestamp,
            })),
          )
          .onConflict(['topic', 'log_partition', 'log_offset'])
          .ignore(),
      );
    }
    return out;
  }

  /** The conflicts as dead letters for the producer, who learns nothing else of them. */
  conflictLetters(): DeadLetter[] {
    return this.conflicts.map(({ record, reason }) => ({ record, reason, field: 'id' }));
  }

  /**
   * The user's counts. A user who never marked anything (no stored bitmap, none decoded) has every
   * stored seq unread and unseen: counted without making three empty native bitmaps, which cost
   * more than the rest of a publish-only user's notification.
   */
  private countsOf(state: UserState): InboxCounts {
    const { stored, decoded } = state;
    if (
      stored.read === null &&
      stored.seen === null &&
      stored.archived === null &&
      !decoded.read &&
      !decoded.seen &&
      !decoded.archived
    ) {
      const count = Math.max(0, state.headSeq - state.floorSeq + 1);
      return { unreadCount: count, unseenCount: count, archivedCount: 0 };
    }
    return inboxCounts(this.bitmapsOf(state), state.floorSeq, state.headSeq);
  }

  /** One notification per user whose head, floor or read state changed. */
  changes(): HeadChange[] {
    const out: HeadChange[] = [];
    for (const state of this.users.values()) {
      if (!this.changed(state)) continue;
      const record = state.lastRecord;
      out.push({
        uid: state.uid,
        headSeq: state.headSeq,
        floorSeq: state.floorSeq,
        ...this.countsOf(state),
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
        seen_bitmap: unknown;
        archived_bitmap: unknown;
        read_version: number | string;
      }>
    >(
      db('user_states')
        .select('uid', 'head_seq', 'floor_seq', 'read_version', ...BITMAP_COLUMNS)
        .whereIn('uid', part),
    );
    for (const row of rows) {
      const bitmaps = decodeInboxBitmaps({
        read: toBuffer(row.read_bitmap),
        seen: toBuffer(row.seen_bitmap),
        archived: toBuffer(row.archived_bitmap),
      });
      out.push({
        uid: row.uid,
        headSeq: row.head_seq,
        floorSeq: row.floor_seq,
        ...inboxCounts(bitmaps, row.floor_seq, row.head_seq),
        readVersion: Number(row.read_version),
      });
    }
  }
  return out;
}
