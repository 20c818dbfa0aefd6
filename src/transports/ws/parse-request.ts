import type { ErrorCode } from '../../errors.js';
import {
  REQUEST_TYPES,
  TOKEN_SUBPROTOCOL_PREFIX,
  type ReqId,
  type RequestType,
} from '../../protocol/websocket.js';

/** A request frame as the hub reads it (docs/websocket.md). */
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

/** The token of an upgrade given as the `bearer.<token>` subprotocol, if any. */
export function tokenFromSubprotocols(header: string | undefined): string | null {
  if (!header) return null;
  for (const part of header.split(',')) {
    const value = part.trim();
    if (value.startsWith(TOKEN_SUBPROTOCOL_PREFIX))
      return value.slice(TOKEN_SUBPROTOCOL_PREFIX.length);
  }
  return null;
}
