/**
 * Full-jitter exponential backoff: a uniform random delay in [0, min(max, initial · 2^attempt)].
 * Spreading reconnects over the whole window keeps a fleet of clients from stampeding a hub that
 * just restarted.
 *
 * @param attempt - 0 for the first retry after a drop, growing by one per failed try
 * @param initialMs - the window of the first retry, in ms
 * @param maxMs - the largest window, in ms
 * @param random - a source of uniform numbers in [0, 1)
 */
export function backoffDelay(
  attempt: number,
  initialMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  // Capping the exponent keeps 2^attempt finite however long a client stays offline.
  const window = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * window);
}
