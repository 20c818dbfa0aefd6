import type { ReadBitmap } from '../domain/read-bitmap.js';

/** One event of a user's feed as every transport returns it. */
export interface FeedEvent {
  readonly seq: number;
  readonly createTime: number;
  readonly body: unknown;
  readonly read: boolean;
}

/** The envelope of diff and range fetch answers. */
export interface FeedPage {
  readonly headSeq: number;
  readonly floorSeq: number;
  readonly events: FeedEvent[];
  /** More events exist past this page in the direction read. */
  readonly more: boolean;
  /** Some asked-for events are gone (expired): the client should refetch from the newest page. */
  readonly reset: boolean;
}

export interface FeedRow {
  seq: number;
  create_time: number | string;
  body: string;
}

export function toFeedEvent(row: FeedRow, bitmap: ReadBitmap): FeedEvent {
  return {
    seq: row.seq,
    createTime: Number(row.create_time),
    body: JSON.parse(row.body) as unknown,
    read: bitmap.has(row.seq),
  };
}
