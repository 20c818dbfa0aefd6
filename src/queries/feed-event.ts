import type { ReadBitmap } from '../domain/read-bitmap.js';
import type { FeedPageOf, FeedEvent as WireFeedEvent } from '../protocol/websocket.js';

/**
 * One event of a user's feed as the queries read it: the wire event, with its body still the
 * stored JSON text, which transports splice into their answers as it is (clients see it as
 * `body`); parsing and re-serialising it cost more than the query.
 */
export type FeedEvent = Omit<WireFeedEvent, 'body'> & {
  readonly bodyJson: string;
  /** `{"seq":…,"createTime":…,"body":…,"read":` as JSON text, made once per row. */
  readonly jsonHead: string;
};

/** The envelope of diff and range fetch answers. */
export type FeedPage = FeedPageOf<FeedEvent>;

export interface FeedRow {
  seq: number;
  create_time: number | string;
  body: string;
  /** Filled on first use: rows kept by the read cache are answered many times. */
  jsonHead?: string;
}

function toFeedEvent(row: FeedRow, read: boolean): FeedEvent {
  const createTime = Number(row.create_time);
  row.jsonHead ??= `{"seq":${row.seq},"createTime":${createTime},"body":${row.body},"read":`;
  return { seq: row.seq, createTime, bodyJson: row.body, read, jsonHead: row.jsonHead };
}

/**
 * The first `limit` rows as events with their read flags. One native call settles the usual
 * pages, all unread or all read; mixed pages ask the bitmap per row.
 */
export function toFeedEvents(
  rows: readonly FeedRow[],
  limit: number,
  bitmap: ReadBitmap,
): FeedEvent[] {
  const count = Math.min(rows.length, limit);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < count; i++) {
    const seq = rows[i]!.seq;
    if (seq < lo) lo = seq;
    if (seq > hi) hi = seq;
  }
  const read = count === 0 ? 0 : bitmap.rangeCardinality(lo, hi + 1);
  const allRead = read === count && hi - lo + 1 === count;
  const events: FeedEvent[] = new Array<FeedEvent>(count);
  for (let i = 0; i < count; i++) {
    const row = rows[i]!;
    events[i] = toFeedEvent(row, read === 0 ? false : allRead || bitmap.has(row.seq));
  }
  return events;
}

/**
 * A page as clients get it, `{ headSeq, floorSeq, events: [{ seq, createTime, body, read }],
 * more, reset }`, as JSON text with the stored bodies spliced in. `members` go first, e.g.
 * `"type":"diff",` for a WebSocket answer.
 */
export function feedPageJson(page: FeedPage, members = ''): string {
  let events = '';
  for (const e of page.events) {
    if (events !== '') events += ',';
    events += e.jsonHead + (e.read ? 'true}' : 'false}');
  }
  return (
    `{${members}"headSeq":${page.headSeq},"floorSeq":${page.floorSeq},` +
    `"events":[${events}],"more":${page.more},"reset":${page.reset}}`
  );
}
