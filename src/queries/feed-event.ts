import type { ReadBitmap } from '../domain/read-bitmap.js';
import type { FeedPageOf, FeedEvent as WireFeedEvent } from '../protocol/websocket.js';

/**
 * One event of a user's feed as the queries read it: the wire event, with its body still the
 * stored JSON text, which transports splice into their answers as it is (clients see it as
 * `body`); parsing and re-serialising it cost more than the query.
 */
export type FeedEvent = Omit<WireFeedEvent, 'body'> & { readonly bodyJson: string };

/** The envelope of diff and range fetch answers. */
export type FeedPage = FeedPageOf<FeedEvent>;

export interface FeedRow {
  seq: number;
  create_time: number | string;
  body: string;
}

export function toFeedEvent(row: FeedRow, bitmap: ReadBitmap): FeedEvent {
  return {
    seq: row.seq,
    createTime: Number(row.create_time),
    bodyJson: row.body,
    read: bitmap.has(row.seq),
  };
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
    events += `{"seq":${e.seq},"createTime":${e.createTime},"body":${e.bodyJson},"read":${e.read}}`;
  }
  return (
    `{${members}"headSeq":${page.headSeq},"floorSeq":${page.floorSeq},` +
    `"events":[${events}],"more":${page.more},"reset":${page.reset}}`
  );
}
