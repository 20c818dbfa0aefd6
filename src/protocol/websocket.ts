/**
 * The WebSocket protocol (docs/websocket.md) as both ends see it: JSON text frames with a
 * `type`. The hub (src/hubs, src/transports/ws) and the client SDK (src/client) import it from
 * here, so a field the hub sends is a field the client's types know. Types and constants only:
 * the client bundles this file into browsers.
 */
import type { ErrorCode } from '../errors.js';

/** The subprotocol the hub speaks; the token may travel as a second one, `bearer.<token>`. */
export const SUBPROTOCOL = 'minipush.v1';
export const TOKEN_SUBPROTOCOL_PREFIX = 'bearer.';

/** Why the hub closed a session. 4500–4999 mean "do not reconnect". */
export const CLOSE_CODES = {
  /** Normal closure. */
  normal: 1000,
  /** A binary frame: the protocol is JSON text. */
  unsupportedData: 1003,
  /** A frame over the message size limit. */
  messageTooBig: 1009,
  /** The server is shutting down: reconnect (to another hub) after a short backoff. */
  serviceRestart: 1012,
  /** The unsent buffer grew past its limit (the client does not read): reconnect. */
  tooSlow: 4008,
  /** No pong within the timeout: reconnect. */
  pingTimeout: 4009,
  /** Missing, invalid or expired token: get a fresh token, then reconnect. */
  unauthenticated: 4401,
  /**
   * The session's token expired while it was open (no `refresh` came in time): get a fresh
   * token, then reconnect.
   */
  tokenExpired: 4402,
  /** Kicked off because the user opened more than the session quota: do not reconnect. */
  kickedOff: 4500,
  /** Credentials that may not open a session (an API key): do not reconnect. */
  forbidden: 4503,
} as const;

/** Requests a client may send; each answer echoes its `reqId`. */
export const REQUEST_TYPES = [
  'diff',
  'fetch',
  'stats',
  'readStates',
  'markRead',
  'markUnread',
  'markSeen',
  'archive',
  'unarchive',
  'send',
  'refresh',
  'ping',
] as const;
export type RequestType = (typeof REQUEST_TYPES)[number];

/** The per-event states besides existence: each a set of seqs the server keeps. */
export const INBOX_STATES = ['read', 'seen', 'archived'] as const;
export type InboxStateName = (typeof INBOX_STATES)[number];

/**
 * Which events a diff or fetch answers with: `unarchived` (the default view), `all`, `unread`
 * and `unseen` (both leave archived events out), `archived`.
 */
export const STATUS_FILTERS = ['unarchived', 'all', 'unread', 'unseen', 'archived'] as const;
export type StatusFilter = (typeof STATUS_FILTERS)[number];

/** A client's request id: a string of 1 to 64 characters or a safe integer. */
export type ReqId = string | number;

/** The user's counters as the hub tells them (in `hello`, `head` and `stats`). */
export interface HeadState {
  /** Highest seq (0 when the feed is empty). */
  readonly headSeq: number;
  /** Lowest seq still stored; older events expired. */
  readonly floorSeq: number;
  /** Unread events in [floorSeq, headSeq], not counting archived ones. */
  readonly unreadCount: number;
  /** Events never seen (the bell's badge), not counting archived ones. */
  readonly unseenCount: number;
  /** Archived events still stored. */
  readonly archivedCount: number;
  /** Grows with every change of the read, seen or archived state: every tab converges on it. */
  readonly readVersion: number;
}

/** What end-to-end messages may be sent over this session. */
export type E2eLimits =
  | { readonly enabled: true; readonly maxBodyBytes: number; readonly ratePerMinute: number }
  | { readonly enabled: false };

/** The hub's limits, sent in `hello`. */
export interface SessionLimits {
  readonly sessionQuota: number;
  readonly maxMessageBytes: number;
  readonly defaultLimit: number;
  readonly maxLimit: number;
  readonly pingIntervalMs: number;
  readonly nudgeWindowMs: number;
  readonly e2e: E2eLimits;
}

/** The first message of a session, once the token is accepted. */
export interface HelloMessage extends HeadState {
  readonly type: 'hello';
  readonly sessionId: string;
  readonly hubId: string;
  readonly limits: SessionLimits;
  /**
   * When the session's token expires (ms since the epoch): send `refresh` with a new token
   * before then, or the session closes with 4402. Absent for a token without `exp`.
   */
  readonly tokenExpiresAt?: number;
}

/** A nudge: the user's head or read state changed. */
export interface HeadMessage extends HeadState {
  readonly type: 'head';
}

/** The session is closed because the user opened more than the quota. */
export interface KickoffMessage {
  readonly type: 'kickoff';
  readonly reason: string;
}

/** A request failed (`reqId` null for a frame that was not a request). */
export interface ErrorMessage {
  readonly type: 'error';
  readonly reqId: ReqId | null;
  readonly code: ErrorCode;
  readonly message: string;
}

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
  /** True once seen (marked seen, or read). */
  readonly seen: boolean;
  /** True while archived: out of the default view, fetchable with the `archived` filter. */
  readonly archived: boolean;
}

/** An answer page of `diff` and `fetch`, of events of type `E`. */
export interface FeedPageOf<E> {
  readonly headSeq: number;
  readonly floorSeq: number;
  readonly events: E[];
  /** More events exist past this page in the direction read. */
  readonly more: boolean;
  /** Some asked-for events expired: refetch from the newest page. */
  readonly reset: boolean;
}

/** An answer page of `diff` and `fetch`. */
export type FeedPage = FeedPageOf<FeedEvent>;

/** The seed's read-state block: bits for seq, seq−1, … (MSB first, 1 = read). */
export interface ReadBlock {
  readonly seq: number;
  readonly len: number;
  readonly base64: string;
}

/** The read states in the format asked for: `roaring` (default), `blocks` or `compact`. */
export type ReadStatesAnswer = { readonly headSeq: number; readonly floorSeq: number } & (
  { readonly bitmap: string } | { readonly blocks: ReadBlock[] } | { readonly compact: string }
);

/** A read mark's answer once projected (`wait: false` answers `{ position }` instead). */
export interface MarkAnswer {
  /** Seqs whose state flipped. */
  readonly changed: number;
}

/** What each request type answers (without `type` and `reqId`). */
export interface Answers {
  diff: FeedPage;
  fetch: FeedPage;
  stats: HeadState;
  readStates: ReadStatesAnswer;
  markRead: MarkAnswer;
  markUnread: MarkAnswer;
  markSeen: MarkAnswer;
  archive: MarkAnswer;
  unarchive: MarkAnswer;
  send: { id: string; position: string };
  /** The session now runs on the new token, until it expires in turn. */
  refresh: { tokenExpiresAt: number | null };
  ping: Record<string, never>;
}

/** Every message the hub sends that is not the answer to a request. */
export type ServerMessage = HelloMessage | HeadMessage | KickoffMessage | ErrorMessage;
