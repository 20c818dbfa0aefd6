import type { Knex } from 'knex';
import { INBOX_STATES, decodeInboxBitmaps } from '../domain/inbox-state.js';
import { typed } from '../store/database.js';
import { appliedOffsets } from './checkpoints.js';

export type ViolationKind =
  | 'seq-gap'
  | 'head-mismatch'
  | 'floor-mismatch'
  | 'orphan-deliveries'
  | 'missing-event'
  | 'read-beyond-head'
  | 'offset-beyond-log';

export interface Violation {
  readonly kind: ViolationKind;
  readonly uid?: number;
  readonly detail: string;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly users: number;
  readonly deliveries: number;
  readonly events: number;
  readonly violations: Violation[];
  /** Violations beyond this many are counted, not listed. */
  readonly truncated: number;
}

export interface VerifyOptions {
  /** End offset + 1 per partition of the commands log, when reachable. */
  readonly logEnds?: readonly number[];
  readonly topic?: string;
  readonly maxListed?: number;
  /** Users per scan step. */
  readonly chunk?: number;
}

interface FeedShape {
  uid: number;
  low: number;
  high: number;
  n: number | string;
}

interface StateRow {
  uid: number;
  head_seq: number;
  floor_seq: number;
  read_bitmap: Buffer | null;
  seen_bitmap: Buffer | null;
  archived_bitmap: Buffer | null;
}

/**
 * Checks the invariants every deployment must keep, reading only the projected tables: each
 * user's stored seqs are exactly floorSeq..headSeq with no gap, every delivery has its event, read,
 * seen and archived bits never pass the head, and no projector claims offsets the log does not have.
 */
export async function verifyProjections(
  db: Knex,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const maxListed = options.maxListed ?? 100;
  const chunk = options.chunk ?? 5000;
  const violations: Violation[] = [];
  let truncated = 0;
  const report = (violation: Violation) => {
    if (violations.length < maxListed) violations.push(violation);
    else truncated++;
  };

  let users = 0;
  let lastUid = -1;
  for (;;) {
    const states = await typed<StateRow[]>(
      db('user_states')
        .where('uid', '>', lastUid)
        .orderBy('uid')
        .limit(chunk)
        .select('uid', 'head_seq', 'floor_seq', 'read_bitmap', 'seen_bitmap', 'archived_bitmap'),
    );
    if (states.length === 0) break;
    const first = states[0]!.uid;
    const last = states[states.length - 1]!.uid;
    lastUid = last;
    users += states.length;
    const shapes = await typed<FeedShape[]>(
      db('user_events')
        .whereBetween('uid', [first, last])
        .groupBy('uid')
        .select(
          'uid',
          db.raw('MIN(seq) AS low'),
          db.raw('MAX(seq) AS high'),
          db.raw('COUNT(*) AS n'),
        ),
    );
    const byUid = new Map(shapes.map((s) => [s.uid, s]));
    for (const state of states) {
      const shape = byUid.get(state.uid);
      byUid.delete(state.uid);
      const { uid, head_seq: head, floor_seq: floor } = state;
      if (!shape) {
        if (head >= floor)
          report({
            kind: 'seq-gap',
            uid,
            detail: `seqs ${floor}..${head} should be stored but none are`,
          });
      } else {
        const count = Number(shape.n);
        if (shape.high !== head)
          report({
            kind: 'head-mismatch',
            uid,
            detail: `head_seq is ${head} but the highest stored seq is ${shape.high}`,
          });
        if (shape.low !== floor)
          report({
            kind: 'floor-mismatch',
            uid,
            detail: `floor_seq is ${floor} but the lowest stored seq is ${shape.low}`,
          });
        if (count !== shape.high - shape.low + 1) {
          report({
            kind: 'seq-gap',
            uid,
            detail: `${count} seqs stored between ${shape.low} and ${shape.high}`,
          });
        }
      }
      const bitmaps = decodeInboxBitmaps({
        read: state.read_bitmap,
        seen: state.seen_bitmap,
        archived: state.archived_bitmap,
      });
      const beyond = INBOX_STATES.map((name) => [name, bitmaps[name]] as const).filter(
        ([, bitmap]) => bitmap.size > 0 && bitmap.maximum() > head,
      );
      if (beyond.length > 0) {
        const top = Math.max(...beyond.map(([, bitmap]) => bitmap.maximum()));
        report({
          kind: 'read-beyond-head',
          uid,
          detail: `seq ${top} is marked ${beyond.map(([name]) => name).join(' and ')} but the head is ${head}`,
        });
      }
    }
    for (const orphan of byUid.values()) {
      report({
        kind: 'orphan-deliveries',
        uid: orphan.uid,
        detail: `${orphan.n} deliveries but no user_states row`,
      });
    }
  }
  // Deliveries of users above the last state row.
  const beyond = await typed<Array<{ uid: number; n: number | string }>>(
    db('user_events')
      .where('uid', '>', lastUid)
      .groupBy('uid')
      .select('uid', db.raw('COUNT(*) AS n')),
  );
  for (const orphan of beyond) {
    report({
      kind: 'orphan-deliveries',
      uid: orphan.uid,
      detail: `${orphan.n} deliveries but no user_states row`,
    });
  }

  const missing = await typed<Array<{ uid: number; seq: number; event_id: string }>>(
    db('user_events as ue')
      .join('user_states as us', 'us.uid', 'ue.uid')
      // Each delivery reads its own partition's copy of the event.
      .leftJoin('events as e', (on) =>
        on.on('e.event_id', 'ue.event_id').andOn('e.log_partition', 'us.log_partition'),
      )
      .whereNull('e.event_id')
      .limit(maxListed)
      .select('ue.uid', 'ue.seq', 'ue.event_id'),
  );
  for (const row of missing) {
    report({
      kind: 'missing-event',
      uid: row.uid,
      detail: `seq ${row.seq} refers to event ${row.event_id}, which its partition does not hold`,
    });
  }

  if (options.logEnds && options.topic) {
    const offsets = await appliedOffsets(db, options.topic);
    for (const [partition, next] of offsets) {
      const end = options.logEnds[partition] ?? 0;
      if (next > end) {
        report({
          kind: 'offset-beyond-log',
          detail: `partition ${partition}: projected up to ${next} but the log ends at ${end}`,
        });
      }
    }
  }

  const [deliveries] = await typed<Array<{ n: number | string }>>(
    db('user_events').count({ n: '*' }),
  );
  // Distinct ids: a partition holds its own copy of each event its users got.
  const [events] = await typed<Array<{ n: number | string }>>(
    db('events').countDistinct({ n: 'event_id' }),
  );
  return {
    ok: violations.length === 0 && truncated === 0,
    users,
    deliveries: Number(deliveries?.n ?? 0),
    events: Number(events?.n ?? 0),
    violations,
    truncated,
  };
}
