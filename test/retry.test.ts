import { describe, expect, it } from 'vitest';
import { UnavailableError, ForbiddenError } from '../src/errors.js';
import { isRetriable, withRetry } from '../src/retry.js';

describe('withRetry', () => {
  it('should retry a failure that may pass until it succeeds', async () => {
    let calls = 0;
    const result = await withRetry(
      async () => {
        calls++;
        if (calls < 3) throw new UnavailableError('down');
        return 'ok';
      },
      { initialDelayMs: 1 },
    );
    expect(result).toBe('ok');
    expect(calls).toBe(3);
  });

  it('should give up at once on an error that says a retry cannot help', async () => {
    let calls = 0;
    const refused = new ForbiddenError('no');
    await expect(
      withRetry(
        () => {
          calls++;
          return Promise.reject(refused);
        },
        { initialDelayMs: 1 },
      ),
    ).rejects.toBe(refused);
    expect(calls).toBe(1);
  });

  it('should stop after the last attempt and throw the last error', async () => {
    let calls = 0;
    await expect(
      withRetry(() => Promise.reject(new Error(`attempt ${++calls}`)), {
        initialDelayMs: 1,
        maxAttempts: 3,
      }),
    ).rejects.toThrow('attempt 3');
  });

  it('should end a pause when its signal aborts, with the error in hand', async () => {
    const stop = new AbortController();
    const started = Date.now();
    const failing = withRetry(() => Promise.reject(new Error('store down')), {
      initialDelayMs: 60_000,
      maxDelayMs: 60_000,
      signal: stop.signal,
      // The first pause is long (full jitter from 60 s); the abort must cut it short.
      onRetry: () => setTimeout(() => stop.abort(), 10),
    });
    await expect(failing).rejects.toThrow('store down');
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it('should read canRetry and kafkajs’ retriable, and retry what says neither', () => {
    expect(isRetriable(new UnavailableError('x'))).toBe(true);
    expect(isRetriable(new ForbiddenError('x'))).toBe(false);
    expect(isRetriable(Object.assign(new Error('x'), { retriable: false }))).toBe(false);
    expect(isRetriable(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe(true);
  });
});
