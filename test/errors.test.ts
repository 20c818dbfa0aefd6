import { describe, expect, it } from 'vitest';
import {
  ERROR_CODES,
  ForbiddenError,
  InvalidInput,
  InvalidSeqError,
  UnavailableError,
  asClientError,
  invalidInput,
  isUnavailable,
} from '../src/errors.js';

describe('the error catalogue', () => {
  it('should give each error its code’s statuses and retry flag', () => {
    const seq = new InvalidSeqError('upTo', 'upTo must be an integer');
    expect(seq).toMatchObject({
      code: 'MINIPUSH_INVALID_SEQ',
      field: 'upTo',
      httpStatus: 400,
      grpcStatus: 3,
      canRetry: false,
    });
    expect(seq).toBeInstanceOf(InvalidInput);
    expect(seq.toJSON()).toEqual({
      error: { code: 'MINIPUSH_INVALID_SEQ', message: 'upTo must be an integer' },
    });
    expect(new UnavailableError('down')).toMatchObject({
      httpStatus: 503,
      grpcStatus: 14,
      canRetry: true,
    });
    expect(InvalidSeqError.code).toBe('MINIPUSH_INVALID_SEQ');
  });

  it('should make the input error of a code learnt from data', () => {
    const error = invalidInput('MINIPUSH_LIMIT_TOO_LARGE', 'limit', 'too big');
    expect(error).toMatchObject({ code: 'MINIPUSH_LIMIT_TOO_LARGE', field: 'limit' });
  });

  it('should map anything to a client error: store failures unavailable, bugs internal', () => {
    const refused = new ForbiddenError('no');
    expect(asClientError(refused)).toBe(refused);
    const lost = Object.assign(new Error('Connection lost'), { code: 'PROTOCOL_CONNECTION_LOST' });
    expect(asClientError(lost)).toMatchObject({ code: 'MINIPUSH_UNAVAILABLE', cause: lost });
    expect(asClientError(new Error('wrapped', { cause: lost })).code).toBe('MINIPUSH_UNAVAILABLE');
    expect(asClientError(new TypeError('x is undefined'))).toMatchObject({
      code: 'MINIPUSH_INTERNAL',
      message: 'internal error',
    });
    expect(isUnavailable(new ForbiddenError('no'))).toBe(false);
  });

  it('should say retry only for codes a retry can fix', () => {
    const retriable = Object.entries(ERROR_CODES)
      .filter(([, spec]) => spec.canRetry)
      .map(([code]) => code)
      .sort();
    expect(retriable).toEqual([
      'MINIPUSH_RATE_LIMITED',
      'MINIPUSH_SHUTTING_DOWN',
      'MINIPUSH_UNAVAILABLE',
      'MINIPUSH_WAIT_TIMEOUT',
    ]);
  });
});
