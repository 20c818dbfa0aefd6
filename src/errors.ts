/**
 * gRPC status codes, the numbers every gRPC implementation uses. Spelled out here so that the
 * catalogue (and the commands that throw from it, which `minipush/producer` ships) carries no
 * gRPC dependency.
 */
export const GRPC_STATUS = {
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

type GrpcStatus = (typeof GRPC_STATUS)[keyof typeof GRPC_STATUS];

interface ErrorSpec {
  readonly http: number;
  readonly grpc: GrpcStatus;
  /** A retry of the same request may succeed (after a pause). */
  readonly canRetry: boolean;
}

const { INVALID_ARGUMENT } = GRPC_STATUS;

/**
 * The error catalogue. Every error MiniPush reports to a client carries one of these codes, and
 * every transport maps it with this one table: REST by `http`, gRPC by `grpc`, WebSocket by the
 * code alone.
 */
export const ERROR_CODES = {
  MINIPUSH_BAD_REQUEST: { http: 400, grpc: INVALID_ARGUMENT, canRetry: false },
  MINIPUSH_INVALID_UID: { http: 400, grpc: INVALID_ARGUMENT, canRetry: false },
  MINIPUSH_INVALID_SEQ: { http: 400, grpc: INVALID_ARGUMENT, canRetry: false },
  MINIPUSH_INVALID_RANGE: { http: 400, grpc: INVALID_ARGUMENT, canRetry: false },
  MINIPUSH_LIMIT_TOO_LARGE: { http: 400, grpc: INVALID_ARGUMENT, canRetry: false },
  MINIPUSH_INVALID_EVENT: { http: 400, grpc: INVALID_ARGUMENT, canRetry: false },
  MINIPUSH_TOO_MANY_RECIPIENTS: { http: 400, grpc: INVALID_ARGUMENT, canRetry: false },
  MINIPUSH_BODY_TOO_LARGE: { http: 413, grpc: INVALID_ARGUMENT, canRetry: false },
  MINIPUSH_UNAUTHENTICATED: { http: 401, grpc: GRPC_STATUS.UNAUTHENTICATED, canRetry: false },
  MINIPUSH_TOKEN_EXPIRED: { http: 401, grpc: GRPC_STATUS.UNAUTHENTICATED, canRetry: false },
  MINIPUSH_FORBIDDEN: { http: 403, grpc: GRPC_STATUS.PERMISSION_DENIED, canRetry: false },
  MINIPUSH_NOT_FOUND: { http: 404, grpc: GRPC_STATUS.NOT_FOUND, canRetry: false },
  MINIPUSH_METHOD_NOT_ALLOWED: { http: 405, grpc: GRPC_STATUS.UNIMPLEMENTED, canRetry: false },
  MINIPUSH_IDEMPOTENCY_CONFLICT: { http: 409, grpc: GRPC_STATUS.ALREADY_EXISTS, canRetry: false },
  MINIPUSH_UNSUPPORTED_MEDIA_TYPE: { http: 415, grpc: INVALID_ARGUMENT, canRetry: false },
  MINIPUSH_HEADERS_TOO_LARGE: { http: 431, grpc: INVALID_ARGUMENT, canRetry: false },
  MINIPUSH_RATE_LIMITED: { http: 429, grpc: GRPC_STATUS.RESOURCE_EXHAUSTED, canRetry: true },
  MINIPUSH_WAIT_TIMEOUT: { http: 504, grpc: GRPC_STATUS.DEADLINE_EXCEEDED, canRetry: true },
  MINIPUSH_UNAVAILABLE: { http: 503, grpc: GRPC_STATUS.UNAVAILABLE, canRetry: true },
  MINIPUSH_SHUTTING_DOWN: { http: 503, grpc: GRPC_STATUS.UNAVAILABLE, canRetry: true },
  MINIPUSH_INTERNAL: { http: 500, grpc: GRPC_STATUS.INTERNAL, canRetry: false },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface MiniPushErrorOptions {
  readonly cause?: unknown;
}

/**
 * The base of every error clients see: a catalogue code, a message naming what was wrong and
 * what to send instead, and the cause. Throw one of the subclasses below, one per code.
 */
export abstract class MiniPushError extends Error {
  readonly code: ErrorCode;
  readonly httpStatus: number;
  readonly grpcStatus: GrpcStatus;
  readonly canRetry: boolean;

  protected constructor(code: ErrorCode, message: string, options?: MiniPushErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
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

/** A request or command field that cannot be used; `field` names it (e.g. `to[3]`). */
export abstract class InvalidInput extends MiniPushError {
  protected constructor(
    code: ErrorCode,
    readonly field: string,
    message: string,
    options?: MiniPushErrorOptions,
  ) {
    super(code, message, options);
  }
}

/** Makes the class of one catalogue code; `name` is what stack traces and logs show. */
function errorClass<C extends ErrorCode>(code: C, name: string) {
  return class extends MiniPushError {
    static readonly code: C = code;
    override readonly name = name;
    constructor(message: string, options?: MiniPushErrorOptions) {
      super(code, message, options);
    }
  };
}

/**
 * As {@link errorClass}, for a code that always names the field at fault. Their `name` is
 * `InvalidCommand` whatever the code: what `minipush/producer` has always thrown.
 */
function inputErrorClass<C extends ErrorCode>(code: C) {
  return class extends InvalidInput {
    static readonly code: C = code;
    override readonly name = 'InvalidCommand';
    constructor(field: string, message: string, options?: MiniPushErrorOptions) {
      super(code, field, message, options);
    }
  };
}

export class BadRequestError extends inputErrorClass('MINIPUSH_BAD_REQUEST') {}
export class InvalidUidError extends inputErrorClass('MINIPUSH_INVALID_UID') {}
export class InvalidSeqError extends inputErrorClass('MINIPUSH_INVALID_SEQ') {}
export class InvalidRangeError extends inputErrorClass('MINIPUSH_INVALID_RANGE') {}
export class LimitTooLargeError extends inputErrorClass('MINIPUSH_LIMIT_TOO_LARGE') {}
export class InvalidEventError extends inputErrorClass('MINIPUSH_INVALID_EVENT') {}
export class TooManyRecipientsError extends inputErrorClass('MINIPUSH_TOO_MANY_RECIPIENTS') {}
export class BodyTooLargeError extends inputErrorClass('MINIPUSH_BODY_TOO_LARGE') {}
export class UnauthenticatedError extends errorClass(
  'MINIPUSH_UNAUTHENTICATED',
  'UnauthenticatedError',
) {}
export class TokenExpiredError extends errorClass('MINIPUSH_TOKEN_EXPIRED', 'TokenExpiredError') {}
export class ForbiddenError extends errorClass('MINIPUSH_FORBIDDEN', 'ForbiddenError') {}
export class NotFoundError extends errorClass('MINIPUSH_NOT_FOUND', 'NotFoundError') {}
export class MethodNotAllowedError extends errorClass(
  'MINIPUSH_METHOD_NOT_ALLOWED',
  'MethodNotAllowedError',
) {}
export class IdempotencyConflictError extends errorClass(
  'MINIPUSH_IDEMPOTENCY_CONFLICT',
  'IdempotencyConflictError',
) {}
export class UnsupportedMediaTypeError extends errorClass(
  'MINIPUSH_UNSUPPORTED_MEDIA_TYPE',
  'UnsupportedMediaTypeError',
) {}
export class HeadersTooLargeError extends errorClass(
  'MINIPUSH_HEADERS_TOO_LARGE',
  'HeadersTooLargeError',
) {}
export class RateLimitedError extends errorClass('MINIPUSH_RATE_LIMITED', 'RateLimitedError') {}
export class WaitTimeoutError extends errorClass('MINIPUSH_WAIT_TIMEOUT', 'WaitTimeoutError') {}
export class UnavailableError extends errorClass('MINIPUSH_UNAVAILABLE', 'UnavailableError') {}
export class ShuttingDownError extends errorClass('MINIPUSH_SHUTTING_DOWN', 'ShuttingDownError') {}
export class InternalError extends errorClass('MINIPUSH_INTERNAL', 'InternalError') {}

/** The classes of input errors by code, for mappings that learn the code from data (schemas). */
const INPUT_ERRORS = {
  MINIPUSH_BAD_REQUEST: BadRequestError,
  MINIPUSH_INVALID_UID: InvalidUidError,
  MINIPUSH_INVALID_SEQ: InvalidSeqError,
  MINIPUSH_INVALID_RANGE: InvalidRangeError,
  MINIPUSH_LIMIT_TOO_LARGE: LimitTooLargeError,
  MINIPUSH_INVALID_EVENT: InvalidEventError,
  MINIPUSH_TOO_MANY_RECIPIENTS: TooManyRecipientsError,
  MINIPUSH_BODY_TOO_LARGE: BodyTooLargeError,
} as const;

/** Codes of the errors that name a field at fault. */
export type InputErrorCode = keyof typeof INPUT_ERRORS;

/** The input error of `code` for `field`. */
export function invalidInput(code: InputErrorCode, field: string, message: string): InvalidInput {
  return new INPUT_ERRORS[code](field, message);
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
    if (e instanceof MiniPushError) return e.code === 'MINIPUSH_UNAVAILABLE';
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) return true;
    if (e.name === 'KnexTimeoutError') return true;
    // kafkajs marks the broker failures a retry may get past.
    if ((e as { retriable?: unknown }).retriable === true) return true;
  }
  return false;
}

/**
 * Whether retrying may help: a catalogue error says so itself; a failure of the store or the log
 * may pass; anything else (a bug, a refusal) will fail the same way again.
 */
export function canRetry(err: unknown): boolean {
  if (err instanceof MiniPushError) return err.canRetry;
  return isUnavailable(err);
}

/**
 * Any error as a client sees it, the one mapping every transport starts from: catalogue errors
 * as they are, infrastructure failures as {@link UnavailableError}, anything else internal.
 */
export function asClientError(err: unknown): MiniPushError {
  if (err instanceof MiniPushError) return err;
  if (isUnavailable(err)) {
    return new UnavailableError('the store or the log is unavailable; retry', { cause: err });
  }
  return new InternalError('internal error', { cause: err });
}
