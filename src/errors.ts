import { status as GrpcStatus } from '@grpc/grpc-js';

interface ErrorSpec {
  readonly http: number;
  readonly grpc: GrpcStatus;
  readonly canRetry: boolean;
}

/**
 * The error catalogue. Every error MiniPush reports to a client carries one of these codes; the
 * HTTP and gRPC transports map them with this one table so both always agree.
 */
export const ERROR_CODES = {
  MINIPUSH_BAD_REQUEST: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, canRetry: false },
  MINIPUSH_INVALID_UID: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, canRetry: false },
  MINIPUSH_INVALID_SEQ: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, canRetry: false },
  MINIPUSH_INVALID_RANGE: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, canRetry: false },
  MINIPUSH_LIMIT_TOO_LARGE: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, canRetry: false },
  MINIPUSH_INVALID_EVENT: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, canRetry: false },
  MINIPUSH_TOO_MANY_RECIPIENTS: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, canRetry: false },
  MINIPUSH_BODY_TOO_LARGE: { http: 413, grpc: GrpcStatus.INVALID_ARGUMENT, canRetry: false },
  MINIPUSH_UNAUTHENTICATED: { http: 401, grpc: GrpcStatus.UNAUTHENTICATED, canRetry: false },
  MINIPUSH_TOKEN_EXPIRED: { http: 401, grpc: GrpcStatus.UNAUTHENTICATED, canRetry: false },
  MINIPUSH_FORBIDDEN: { http: 403, grpc: GrpcStatus.PERMISSION_DENIED, canRetry: false },
  MINIPUSH_NOT_FOUND: { http: 404, grpc: GrpcStatus.NOT_FOUND, canRetry: false },
  MINIPUSH_RATE_LIMITED: { http: 429, grpc: GrpcStatus.RESOURCE_EXHAUSTED, canRetry: true },
  MINIPUSH_WAIT_TIMEOUT: { http: 504, grpc: GrpcStatus.DEADLINE_EXCEEDED, canRetry: true },
  MINIPUSH_UNAVAILABLE: { http: 503, grpc: GrpcStatus.UNAVAILABLE, canRetry: true },
  MINIPUSH_SHUTTING_DOWN: { http: 503, grpc: GrpcStatus.UNAVAILABLE, canRetry: true },
  MINIPUSH_INTERNAL: { http: 500, grpc: GrpcStatus.INTERNAL, canRetry: false },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The one error type clients see: a catalogue code, a message naming what was wrong, a cause. */
export class MiniPushError extends Error {
  override readonly name = 'MiniPushError';
  readonly code: ErrorCode;
  readonly httpStatus: number;
  readonly grpcStatus: GrpcStatus;
  readonly canRetry: boolean;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    const spec: ErrorSpec = ERROR_CODES[code];
    this.httpStatus = spec.http;
    this.grpcStatus = spec.grpc;
    this.canRetry = spec.canRetry;
  }

  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

export function badRequest(message: string): MiniPushError {
  return new MiniPushError('MINIPUSH_BAD_REQUEST', message);
}

export function isMiniPushError(err: unknown): err is MiniPushError {
  return err instanceof MiniPushError;
}

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN',
  'ER_LOCK_WAIT_TIMEOUT',
  'ER_LOCK_DEADLOCK',
  'SQLITE_BUSY',
]);

/** True for failures of the store or the log that a retry may fix (they are not our bugs). */
export function isUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) return true;
    if (e.name === 'KnexTimeoutError') return true;
  }
  return false;
}

/** Any error as a client error: catalogue errors as they are, infrastructure failures as 503. */
export function asClientError(err: unknown): MiniPushError {
  if (err instanceof MiniPushError) return err;
  if (isUnavailable(err)) {
    return new MiniPushError('MINIPUSH_UNAVAILABLE', 'the store or the log is unavailable; retry', {
      cause: err,
    });
  }
  return new MiniPushError('MINIPUSH_INTERNAL', 'internal error', { cause: err });
}
