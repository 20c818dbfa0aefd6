import type { InboxBitmaps } from '../domain/inbox-state.js';
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

/**
 * Answers "is this row's seq in the bitmap" for the rows of one page: one native call settles
 * the usual pages, none or all of them; mixed pages ask the bitmap per row.
 */
function membership(
  bitmap: ReadBitmap,
  page: { lo: number; hi: number; count: number },
): (seq: number) => boolean {
  const inPage = page.count === 0 ? 0 : bitmap.rangeCardinality(page.lo, page.hi + 1);
  if (inPage === 0) return () => false;
  if (inPage === page.count && page.hi - page.lo + 1 === page.count) return () => true;
  return (seq) => bitmap.has(seq);
}

/** The first `limit` rows as events with their read, seen and archived flags. */
export function toFeedEvents(
  rows: readonly FeedRow[],
  limit: number,
  bitmaps: InboxBitmaps,
): FeedEvent[] {
  const count = Math.min(rows.length, limit);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < count; i++) {
    const seq = rows[i]!.seq;
    if (seq < lo) lo = seq;
    if (seq > hi) hi = seq;
  }
  const page = { lo, hi, count };
  const isRead = membership(bitmaps.read, page);
  const isSeen = membership(bitmaps.seen, page);
  const isArchived = membership(bitmaps.archived, page);
  const events: FeedEvent[] = new Array<FeedEvent>(count);
  for (let i = 0; i < count; i++) {
    const row = rows[i]!;
    const createTime = Number(row.create_time);
    row.jsonHead ??= `{"seq":${row.seq},"createTime":${createTime},"body":${row.body},"read":`;
    events[i] = {
      seq: row.seq,
      createTime,
      bodyJson: row.body,
      read: isRead(row.seq),
      seen: isSeen(row.seq),
      archived: isArchived(row.seq),
      jsonHead: row.jsonHead,
    };
  }
  return events;
}

/**
 * A page as clients get it, `{ headSeq, floorSeq, events: [{ seq, createTime, body, read, seen,
 * archived }], more, reset }`, as JSON text with the stored bodies spliced in. `members` go first, e.g.
 * `"type":"diff",` for a WebSocket answer.
 */
export function feedPageJson(page: FeedPage, members = ''): string {
  let events = '';
  for (const e of page.events) {
    if (events !== '') events += ',';
    events +=
      e.jsonHead +
      (e.read ? 'true,"seen":' : 'false,"seen":') +
      (e.seen ? 'true,"archived":' : 'false,"archived":') +
      (e.archived ? 'true}' : 'false}');
  }
  return (
    `{${members}"headSeq":${page.headSeq},"floorSeq":${page.floorSeq},` +
    `"events":[${events}],"more":${page.more},"reset":${page.reset}}`
  );
}
