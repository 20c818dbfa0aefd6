import { readFileSync } from 'node:fs';

/** File descriptors kept free for the store, the log, REST clients and upgrades in progress. */
export const FD_HEADROOM = 256;

/** This process's soft limit on open files, or null where it cannot be read (not Linux). */
export function openFileLimit(): number | null {
  try {
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
    if (!match || match[1] === 'unlimited') return null;
    return Number(match[1]);
  } catch {
    return null;
  }
}

/**
 * Sessions a hub may hold: the configured maximum, lowered so the process never runs out of file
 * descriptors (each session is one socket). Past it the hub refuses upgrades with 503 instead of
 * failing on EMFILE inside the store or the log clients.
 */
export function sessionCapacity(configured: number, limit = openFileLimit()): number {
  if (limit === null) return configured;
  return Math.max(1, Math.min(configured, limit - FD_HEADROOM));
}
