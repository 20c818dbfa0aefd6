import type { Knex } from 'knex';
import { selectSeqs, type StatusFilter } from '../domain/inbox-state.js';
import type { FeedRow } from './feed-event.js';
import { readUserState, type StoredUserState } from './user-state.js';
import { dialectOf, typed } from '../store/database.js';

export type SeqOrder = 'asc' | 'desc';

/**
 * One user's feed as one query sees it: the state read once, and pages of the events it holds.
 * Events are immutable once delivered, so pages read later agree with the state.
 */
export interface UserView {
  readonly state: StoredUserState;
  /** Up to `limit` events with seqs in [lo, hi], `order` by seq; lo ≥ floor, hi ≤ head. */
  page(lo: number, hi: number, order: SeqOrder, limit: number): Promise<readonly FeedRow[]>;
  /** The events of these stored seqs, in the order given. */
  rows(seqs: readonly number[]): Promise<readonly FeedRow[]>;
}

/** Where queries get their views: the store itself, or a read cache in front of it. */
export interface UserViews {
  open(uid: number): Promise<UserView>;
}

export function readPage(
  db: Knex,
  uid: number,
  partition: number,
  range: { lo: number; hi: number; order: SeqOrder; limit: number },
): Promise<FeedRow[]> {
  return typed<FeedRow[]>(
    db('user_events as ue')
      .join('events as e', (on) =>
        on.on('e.event_id', 'ue.event_id').andOnVal('e.log_partition', partition),
      )
      .where('ue.uid', uid)
      .andWhereBetween('ue.seq', [range.lo, range.hi])
      .orderBy('ue.seq', range.order)
      .limit(range.limit)
      .select('ue.seq as seq', 'e.create_time as create_time', 'e.body as body'),
  );
}

/** `?,?,…` for each length of seq list asked for: the filtered page's SQL is built once. */
const rowsSql = new Map<string, string>();

function rowsStatement(count: number, order: SeqOrder): string {
  const key = `${count}${order}`;
  let sql = rowsSql.get(key);
  if (!sql) {
    sql =
      'SELECT ue.seq AS seq, e.create_time AS create_time, e.body AS body FROM user_events ue ' +
      'JOIN events e ON e.event_id = ue.event_id AND e.log_partition = ? ' +
      `WHERE ue.uid = ? AND ue.seq IN (${Array.from({ length: count }, () => '?').join(',')}) ` +
      `ORDER BY ue.seq ${order === 'asc' ? 'ASC' : 'DESC'}`;
    if (rowsSql.size < 1000) rowsSql.set(key, sql);
  }
  return sql;
}

/**
 * The events of some seqs of a user, ordered as given (ascending or descending). Plain SQL: the
 * query builder cost as much as the statement for a list of seqs.
 */
export async function readRows(
  db: Knex,
  uid: number,
  partition: number,
  seqs: readonly number[],
): Promise<FeedRow[]> {
  if (seqs.length === 0) return [];
  const order: SeqOrder = seqs.length > 1 && seqs[0]! > seqs[1]! ? 'desc' : 'asc';
  const result: unknown = await db.raw(rowsStatement(seqs.length, order), [
    partition,
    uid,
    ...seqs,
  ]);
  // mysql2 answers [rows, fields]; better-sqlite3 the rows.
  return (dialectOf(db) === 'mysql' ? (result as [FeedRow[]])[0] : result) as FeedRow[];
}

/** A view reading straight from the store. */
export function storeView(db: Knex, uid: number, state: StoredUserState): UserView {
  return {
    state,
    page: (lo, hi, order, limit) => readPage(db, uid, state.partition, { lo, hi, order, limit }),
    rows: (seqs) => readRows(db, uid, state.partition, seqs),
  };
}

/**
 * Up to `limit` events in [lo, hi] that `status` selects, in `order`. The bitmaps pick the
 * seqs, so a filtered page reads only the events it answers with, however many it skips.
 */
export function filteredPage(
  view: UserView,
  status: StatusFilter,
  range: { lo: number; hi: number; order: SeqOrder; limit: number },
): Promise<readonly FeedRow[]> {
  const seqs = selectSeqs(view.state.bitmaps, status, range);
  if (seqs === null) return view.page(range.lo, range.hi, range.order, range.limit);
  if (seqs.length === 0) return Promise.resolve([]);
  const first = seqs[0]!;
  const last = seqs[seqs.length - 1]!;
  // One run of seqs is a plain page, which the read cache serves from what it keeps.
  if (Math.abs(last - first) + 1 === seqs.length) {
    return view.page(Math.min(first, last), Math.max(first, last), range.order, seqs.length);
  }
  return view.rows(seqs);
}

/** Views straight from the projected tables: two statements per query. */
export class StoreUserViews implements UserViews {
  constructor(private readonly db: Knex) {}

  async open(uid: number): Promise<UserView> {
    return storeView(this.db, uid, await readUserState(this.db, uid));
  }
}
