import { setTimeout as sleep } from 'node:timers/promises';

export interface RetryOptions {
  /** First pause in ms; doubles each attempt (with full jitter) up to `maxDelayMs`. */
  readonly initialDelayMs?: number;
  readonly maxDelayMs?: number;
  /** Gives up after this many attempts; unlimited when absent. */
  readonly maxAttempts?: number;
  /** False for errors that retrying cannot fix; they are thrown at once. */
  readonly canRetry?: (err: unknown) => boolean;
  /** Checked before each retry; when false the last error is thrown. */
  readonly shouldContinue?: () => boolean;
  readonly onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/**
 * The one retry path: bounded exponential backoff with full jitter, giving up on the first
 * non-retriable error or when the caller stops.
 */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const initial = options.initialDelayMs ?? 100;
  const max = options.maxDelayMs ?? 5000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      const retriable = options.canRetry?.(err) ?? true;
      const more = options.maxAttempts === undefined || attempt < options.maxAttempts;
      const active = options.shouldContinue?.() ?? true;
      if (!retriable || !more || !active) throw err;
      const ceiling = Math.min(max, initial * 2 ** Math.min(attempt - 1, 20));
      const delay = Math.max(1, Math.round(Math.random() * ceiling));
      options.onRetry?.(err, attempt, delay);
      await sleep(delay);
    }
  }
}
