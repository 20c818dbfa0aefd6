import { setTimeout as sleep } from 'node:timers/promises';

export interface RetryOptions {
  /** First pause in ms; doubles each attempt (with full jitter) up to `maxDelayMs`. Default 100. */
  readonly initialDelayMs?: number;
  /** Longest pause in ms. Default 5000. */
  readonly maxDelayMs?: number;
  /** Gives up after this many attempts; unlimited when absent. */
  readonly maxAttempts?: number;
  /** False for errors that retrying cannot fix; they are thrown at once. Default {@link isRetriable}. */
  readonly canRetry?: (err: unknown) => boolean;
  /** Checked before each retry; when false the last error is thrown. */
  readonly shouldContinue?: () => boolean;
  /** Aborted by the owner's `close()`: the pause ends at once and the last error is thrown. */
  readonly signal?: AbortSignal;
  readonly onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/**
 * Whether an error says a retry may help. Catalogue errors and other errors of ours carry
 * `canRetry`; kafkajs' carry `retriable`. Errors that say neither (a dropped connection, a lock
 * timeout from the store) are retried: every caller of {@link withRetry} talks to the store or
 * the log, whose failures pass.
 */
export function isRetriable(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return true;
  const { canRetry, retriable } = err as { canRetry?: unknown; retriable?: unknown };
  return canRetry !== false && retriable !== false;
}

/**
 * The one retry path: bounded exponential backoff with full jitter, giving up on the first
 * non-retriable error, when the caller stops, or when its signal aborts.
 */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const initial = options.initialDelayMs ?? 100;
  const max = options.maxDelayMs ?? 5000;
  const canRetry = options.canRetry ?? isRetriable;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      const more = options.maxAttempts === undefined || attempt < options.maxAttempts;
      const active = (options.shouldContinue?.() ?? true) && !options.signal?.aborted;
      if (!canRetry(err) || !more || !active) throw err;
      const ceiling = Math.min(max, initial * 2 ** Math.min(attempt - 1, 20));
      const delay = Math.max(1, Math.round(Math.random() * ceiling));
      options.onRetry?.(err, attempt, delay);
      try {
        await sleep(delay, undefined, options.signal ? { signal: options.signal } : {});
      } catch {
        throw err;
      }
    }
  }
}
