/**
 * The wire shapes the client reads and writes (the hub's WebSocket protocol), and the minimal
 * WebSocket surface it needs. Declared here, not imported from the server, so `minipush/client`
 * carries no server or Node code into a browser bundle.
 */

/** One event of the user's feed. */
export interface FeedEvent {
  /** Per-user sequence number: 1, 2, 3, … with no gaps. */
  readonly seq: number;
  /** Creation time, ms since the epoch. */
  readonly createTime: number;
  /** The business payload, as published. */
  readonly body: unknown;
  /** True once marked read (by any session of the user). */
  readonly read: boolean;
}

/** The user's counters as the server last told them. */
export interface HeadState {
  /** Highest seq (0 when the feed is empty). */
  readonly headSeq: number;
  /** Lowest seq still stored; older events expired. */
  readonly floorSeq: number;
  /** Unread events in [floorSeq, headSeq]. */
  readonly unreadCount: number;
  /** Grows with every change of the read state. */
  readonly readVersion: number;
}

export interface HelloMessage extends HeadState {
  readonly type: 'hello';
  readonly sessionId: string;
  readonly limits: {
    readonly sessionQuota: number;
    readonly maxMessageBytes: number;
    readonly defaultLimit: number;
    readonly maxLimit: number;
    readonly pingIntervalMs: number;
    readonly nudgeWindowMs: number;
  };
}

/** An answer page of `diff` and `fetch`. */
export interface FeedPage {
  readonly headSeq: number;
  readonly floorSeq: number;
  readonly events: FeedEvent[];
  readonly more: boolean;
  readonly reset: boolean;
}

/** The seed's read-state block: bits for seq, seq−1, … (MSB first, 1 = read). */
export interface ReadBlock {
  readonly seq: number;
  readonly len: number;
  readonly base64: string;
}

/** What each request type answers (without `type` and `reqId`). */
export interface Answers {
  diff: FeedPage;
  fetch: FeedPage;
  stats: HeadState;
  readStates: { headSeq: number; floorSeq: number; blocks: ReadBlock[] };
  markRead: { changed: number };
  markUnread: { changed: number };
  ping: Record<string, never>;
}

export type RequestType = keyof Answers;

/** The parts of a WebSocket the client uses; the browser's and the `ws` package's both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: never) => void) | null;
  onmessage: ((event: { readonly data: unknown }) => void) | null;
  onclose: ((event: { readonly code: number; readonly reason: string }) => void) | null;
  onerror: ((event: never) => void) | null;
}

/** A WebSocket constructor: `globalThis.WebSocket`, or `WebSocket` from the `ws` package. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => object;

/** The subprotocol the hub speaks; the token travels as a second one, `bearer.<token>`. */
export const SUBPROTOCOL = 'minipush.v1';

/** `readyState` of an open WebSocket (the same number everywhere). */
export const OPEN = 1;
