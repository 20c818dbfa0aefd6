import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../src/client/backoff.js';

describe('backoffDelay', () => {
  it('should double the window per attempt up to the maximum', () => {
    // Given a random source at its top, the delay is the whole window.
    const top = () => 0.999999;
    const windows = [0, 1, 2, 3, 4, 5, 6, 50].map((a) => backoffDelay(a, 500, 20_000, top));
    expect(windows).toEqual([499, 999, 1999, 3999, 7999, 15_999, 19_999, 19_999]);
  });

  it('should spread delays over the whole window (full jitter), down to zero', () => {
    expect(backoffDelay(3, 500, 20_000, () => 0)).toBe(0);
    expect(backoffDelay(3, 500, 20_000, () => 0.5)).toBe(2000);
    const sample = Array.from({ length: 2000 }, () => backoffDelay(2, 100, 10_000));
    expect(Math.min(...sample)).toBeLessThan(40);
    expect(Math.max(...sample)).toBeGreaterThan(360);
    expect(Math.max(...sample)).toBeLessThan(400);
  });
});
