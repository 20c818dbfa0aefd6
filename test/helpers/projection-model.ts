import type { Knex } from 'knex';
import {
  InvalidCommand,
  decodeCommand,
  uidsOf,
  type CommandLimits,
  type CommandRecord,
} from '../../src/commands/command-record.js';
import type { Backend } from '../../src/backend.js';
import { partitionOfUid } from '../../src/domain/partitioner.js';
import { decodeBitmap } from '../../src/domain/read-bitmap.js';
import { EmbeddedCommandLog } from '../../src/log/embedded-log.js';
import { HEADERS, type LogRecord } from '../../src/log/log.js';
import { typed } from '../../src/store/database.js';
import { eventually } from './pipeline.js';

/** Every record of the commands log up to its current end, per partition, in offset order. */
export async function readWholeLog(backend: Backend): Promise<LogRecord[][]> {
  const ends = await backend.log.endOffsets();
  if (backend.log instanceof EmbeddedCommandLog) {
    const log = backend.log;
    return ends.map((end, partition) => log.read(log.topic, partition, 0, end));
  }
  const kafka = backend.kafka!;
  const groupId = `${backend.topics.commands}.model-${Date.now()}`;
  const out: LogRecord[][] = ends.map(() => []);
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [backend.topics.commands], fromBeginning: true });
    await consumer.run({
      eachMessage: ({ partition, message }) => {
        const offset = Number(message.offset);
        if (offset >= (ends[partition] ?? 0)) return Promise.resolve();
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(message.headers ?? {})) {
          const first = Array.isArray(value) ? value[0] : value;
          if (first !== undefined) headers[name] = first.toString();
        }
        out[partition]!.push({
          partition,
          offset,
          key: message.key?.toString() ?? null,
          value: message.value,
          headers,
          timestamp: Number(message.timestamp),
        });
        return Promise.resolve();
      },
    });
    await eventually(
      () => out.map((records) => records.length),
      (counts) => counts.every((count, p) => count >= (ends[p] ?? 0)),
      60_000,
    );
  } finally {
    await consumer.disconnect();
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteGroups([groupId]).catch(() => undefined);
    await admin.disconnect();
  }
  return out;
}

export interface ModelDelivery {
  readonly seq: number;
  readonly eventId: string;
  readonly ts: number;
}

export interface ModelUser {
  /** Every delivery, expired ones included (those below the floor). */
  readonly deliveries: ModelDelivery[];
  /** Lowest seq kept: raised by expire commands, never past head + 1. */
  floor: number;
  lastTs: number;
  readonly read: Set<number>;
  readonly seen: Set<number>;
  readonly archived: Set<number>;
  readVersion: number;
}

/** What the projection must hold after applying a log, computed the simplest way possible. */
export interface ProjectionModel {
  readonly users: Map<number, ModelUser>;
  /** Bits changed per read command, by `<partition>:<offset>` of the record applied. */
  readonly results: Map<string, number>;
  /** Records the projector must dead-letter. */
  readonly junk: number;
}

/**
 * A second, independent statement of the projection rules: each partition in log order; a
 * record that does not decode is junk; a re-routed record is applied once per origin; a
 * publish gives each local recipient not yet holding the id the next seq, at the user's log
 * time (never decreasing); an expire raises the floor (never past head + 1); read, seen and
 * archive marks change only seqs in [floor, head]; mark read marks seen too; any flip of any
 * state bumps the read version.
 */
export function replayLog(
  log: readonly (readonly LogRecord[])[],
  limits: CommandLimits,
): ProjectionModel {
  const partitions = log.length;
  const users = new Map<number, ModelUser>();
  const results = new Map<string, number>();
  const delivered = new Set<string>();
  let junk = 0;
  const user = (uid: number): ModelUser => {
    let state = users.get(uid);
    if (!state)
      users.set(
        uid,
        (state = {
          deliveries: [],
          floor: 1,
          lastTs: 0,
          read: new Set(),
          seen: new Set(),
          archived: new Set(),
          readVersion: 0,
        }),
      );
    return state;
  };
  log.forEach((records, partition) => {
    const origins = new Set<string>();
    for (const record of records) {
      let command: CommandRecord;
      try {
        command = decodeCommand(record.value, limits);
      } catch (err) {
        if (!(err instanceof InvalidCommand)) throw err;
        junk++;
        continue;
      }
      const origin = record.headers[HEADERS.origin];
      if (origin !== undefined) {
        if (origins.has(origin)) continue;
        origins.add(origin);
      }
      const local = uidsOf(command).filter((uid) => partitionOfUid(uid, partitions) === partition);
      if (origin !== undefined && local.length !== uidsOf(command).length) {
        junk++;
        continue;
      }
      if (command.type === 'publish') {
        for (const uid of local) {
          const key = `${command.id}\u0000${uid}`;
          if (delivered.has(key)) continue;
          delivered.add(key);
          const state = user(uid);
          state.lastTs = Math.max(state.lastTs, record.timestamp);
          state.deliveries.push({
            seq: state.deliveries.length + 1,
            eventId: command.id,
            ts: state.lastTs,
          });
        }
        continue;
      }
      if (local.length === 0) continue;
      const state = user(command.uid);
      const head = state.deliveries.length;
      if (command.type === 'expire') {
        state.floor = Math.max(state.floor, Math.min(command.floor, head + 1));
        continue;
      }
      const kept = (seq: number) => seq >= state.floor && seq <= head;
      const seqs =
        'upTo' in command
          ? Array.from({ length: Math.min(command.upTo, head) }, (_, i) => i + 1).filter(kept)
          : command.seqs.filter(kept);
      const flip = (set: Set<number>, add: boolean) => {
        let flipped = 0;
        for (const seq of seqs) {
          if (add === set.has(seq)) continue;
          if (add) set.add(seq);
          else set.delete(seq);
          flipped++;
        }
        return flipped;
      };
      let changed = 0;
      let seenToo = 0;
      switch (command.type) {
        case 'markRead':
        case 'markReadUpTo':
          changed = flip(state.read, true);
          seenToo = flip(state.seen, true);
          break;
        case 'markUnread':
          changed = flip(state.read, false);
          break;
        case 'markSeen':
        case 'markSeenUpTo':
          changed = flip(state.seen, true);
          break;
        case 'archive':
        case 'archiveUpTo':
          changed = flip(state.archived, true);
          break;
        case 'unarchive':
        case 'unarchiveUpTo':
          changed = flip(state.archived, false);
          break;
      }
      if (changed + seenToo > 0) state.readVersion++;
      results.set(`${partition}:${record.offset}`, changed);
    }
  });
  return { users, results, junk };
}

export interface StoredUser {
  readonly headSeq: number;
  readonly floorSeq: number;
  readonly lastTs: number;
  readonly read: number[];
  readonly seen: number[];
  readonly archived: number[];
  readonly readVersion: number;
}

/** The projected rows in comparable form. */
export async function readProjection(
  db: Knex,
  topic: string,
): Promise<{
  deliveries: Map<number, ModelDelivery[]>;
  users: Map<number, StoredUser>;
  results: Map<string, number>;
}> {
  const rows = await typed<
    Array<{ uid: number; seq: number; event_id: string; ts: number | string }>
  >(db('user_events').orderBy(['uid', 'seq']).select('uid', 'seq', 'event_id', 'ts'));
  const deliveries = new Map<number, ModelDelivery[]>();
  for (const row of rows) {
    let list = deliveries.get(row.uid);
    if (!list) deliveries.set(row.uid, (list = []));
    list.push({ seq: row.seq, eventId: row.event_id, ts: Number(row.ts) });
  }
  const states = await typed<
    Array<{
      uid: number;
      head_seq: number;
      floor_seq: number;
      last_ts: number | string;
      read_bitmap: Buffer | null;
      seen_bitmap: Buffer | null;
      archived_bitmap: Buffer | null;
      read_version: number | string;
    }>
  >(db('user_states').select());
  const users = new Map<number, StoredUser>();
  for (const row of states) {
    const storedSeqs = (bitmap: Buffer | null) =>
      decodeBitmap(bitmap)
        .toArray()
        .filter((seq) => seq >= row.floor_seq && seq <= row.head_seq);
    users.set(row.uid, {
      headSeq: row.head_seq,
      floorSeq: row.floor_seq,
      lastTs: Number(row.last_ts),
      // Bits below the floor are trimmed lazily; only stored seqs count.
      read: storedSeqs(row.read_bitmap),
      // Stored as "seen, not read".
      seen: [...new Set([...storedSeqs(row.seen_bitmap), ...storedSeqs(row.read_bitmap)])].sort(
        (a, b) => a - b,
      ),
      archived: storedSeqs(row.archived_bitmap),
      readVersion: Number(row.read_version),
    });
  }
  const resultRows = await typed<
    Array<{ log_partition: number; log_offset: number | string; changed: number }>
  >(db('command_results').where({ topic }).select('log_partition', 'log_offset', 'changed'));
  const results = new Map<string, number>();
  for (const row of resultRows) results.set(`${row.log_partition}:${row.log_offset}`, row.changed);
  return { deliveries, users, results };
}

/** Where the stored projection differs from the model, one line per user and field. */
export function differences(
  model: ProjectionModel,
  stored: Awaited<ReturnType<typeof readProjection>>,
): string[] {
  const out: string[] = [];
  for (const [uid, user] of model.users) {
    const state = stored.users.get(uid);
    if (user.deliveries.length === 0) {
      if (state) out.push(`uid ${uid}: stored without deliveries`);
      continue;
    }
    const want: Record<string, unknown> = {
      feed: user.deliveries,
      headSeq: user.deliveries.length,
      lastTs: user.lastTs,
      read: [...user.read].sort((a, b) => a - b),
      seen: [...user.seen].sort((a, b) => a - b),
      archived: [...user.archived].sort((a, b) => a - b),
      readVersion: user.readVersion,
    };
    const got: Record<string, unknown> = {
      feed: stored.deliveries.get(uid) ?? [],
      headSeq: state?.headSeq,
      lastTs: state?.lastTs,
      read: state?.read,
      seen: state?.seen,
      archived: state?.archived,
      readVersion: state?.readVersion,
    };
    for (const field of Object.keys(want)) {
      const [w, g] = [JSON.stringify(want[field]), JSON.stringify(got[field])];
      if (w !== g) out.push(`uid ${uid} ${field}: want ${w.slice(0, 400)} got ${g.slice(0, 400)}`);
    }
  }
  const modelled = new Set(
    [...model.users].filter(([, u]) => u.deliveries.length > 0).map(([uid]) => uid),
  );
  for (const uid of stored.users.keys()) {
    if (!modelled.has(uid)) out.push(`uid ${uid}: stored but not in the log`);
  }
  return out;
}
