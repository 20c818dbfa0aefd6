/** Percentiles (0–100) of samples; the samples are sorted in place. */
export function percentiles(
  samples: Float64Array | number[],
  ps: readonly number[],
): Record<string, number> {
  const sorted = samples instanceof Float64Array ? samples.sort() : samples.sort((a, b) => a - b);
  const out: Record<string, number> = {};
  for (const p of ps) {
    if (sorted.length === 0) {
      out[`p${p}`] = NaN;
      continue;
    }
    const index = Math.min(
      sorted.length - 1,
      Math.max(0, Math.ceil((p / 100) * sorted.length) - 1),
    );
    out[`p${p}`] = sorted[index]!;
  }
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `probe` until it returns true or the deadline passes; returns whether it did. */
export async function until(
  probe: () => Promise<boolean> | boolean,
  timeoutMs: number,
  intervalMs = 200,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() > deadline) return false;
    await sleep(intervalMs);
  }
}

/** Wall-clock ms with sub-ms precision, comparable across processes of this box. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}
