import type { ErrorCode } from '../errors.js';

/**
 * The WebSocket protocol (docs/websocket.md): JSON text frames with a `type`. Requests carry a
 * client `reqId` (string up to 64 characters or integer) echoed in the answer.
 */

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
  /** Kicked off because the user opened more than the session quota: do not reconnect. */
  kickedOff: 4500,
  /** Credentials that may not open a session (an API key): do not reconnect. */
  forbidden: 4503,
} as const;

export const REQUEST_TYPES = [
  'diff',
  'fetch',
  'stats',
  'readStates',
  'markRead',
  'markUnread',
  'send',
  'ping',
] as const;
export type RequestType = (typeof REQUEST_TYPES)[number];

export type ReqId = string | number;

export interface ClientRequest {
  readonly type: RequestType;
  readonly reqId: ReqId | null;
  /** Every other field, validated by the service like the REST parameters. */
  readonly fields: Readonly<Record<string, unknown>>;
}

export type ParseResult =
  | { readonly ok: true; readonly request: ClientRequest }
  | {
      readonly ok: false;
      readonly reqId: ReqId | null;
      readonly code: ErrorCode;
      readonly message: string;
    };

function isReqId(value: unknown): value is ReqId {
  return (
    (typeof value === 'string' && value.length > 0 && value.length <= 64) ||
    (typeof value === 'number' && Number.isSafeInteger(value))
  );
}

/** Parses one text frame; never throws. */
export function parseClientMessage(text: string): ParseResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return {
      ok: false,
      reqId: null,
      code: 'MINIPUSH_BAD_REQUEST',
      message: 'message is not valid JSON',
    };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return {
      ok: false,
      reqId: null,
      code: 'MINIPUSH_BAD_REQUEST',
      message: 'message must be a JSON object',
    };
  }
  const { type, reqId, ...fields } = parsed as Record<string, unknown>;
  const id = reqId === undefined || reqId === null ? null : isReqId(reqId) ? reqId : undefined;
  if (id === undefined) {
    return {
      ok: false,
      reqId: null,
      code: 'MINIPUSH_BAD_REQUEST',
      message: 'reqId must be a string of 1 to 64 characters or an integer',
    };
  }
  if (typeof type !== 'string' || !(REQUEST_TYPES as readonly string[]).includes(type)) {
    return {
      ok: false,
      reqId: id,
      code: 'MINIPUSH_BAD_REQUEST',
      message: `unknown message type ${JSON.stringify(type) ?? 'undefined'}; expected one of ${REQUEST_TYPES.join(', ')}`,
    };
  }
  if (id === null && type !== 'ping') {
    return {
      ok: false,
      reqId: null,
      code: 'MINIPUSH_BAD_REQUEST',
      message: `${type} needs a reqId`,
    };
  }
  return { ok: true, request: { type: type as RequestType, reqId: id, fields } };
}

/** Where the token comes from: `?token=` or the `bearer.<token>` subprotocol. */
export const SUBPROTOCOL = 'minipush.v1';
export const TOKEN_SUBPROTOCOL_PREFIX = 'bearer.';

export function tokenFromSubprotocols(header: string | undefined): string | null {
  if (!header) return null;
  for (const part of header.split(',')) {
    const value = part.trim();
    if (value.startsWith(TOKEN_SUBPROTOCOL_PREFIX))
      return value.slice(TOKEN_SUBPROTOCOL_PREFIX.length);
  }
  return null;
}
