import type { Knex } from 'knex';
import type { LogPosition } from '../log/log.js';
import { appliedOffsets } from './checkpoints.js';

interface Waiter {
  readonly partition: number;
  readonly offset: number;
  readonly resolve: () => void;
}

/**
 * Tells when log positions have been projected (read-your-writes for `?wait=true`). Learns
 * progress from an in-process projector when there is one, and by polling projector_offsets
 * while anyone waits, so it works wherever the projector runs.
 */
export class ProjectionProgress {
  private readonly applied = new Map<number, number>();
  private readonly waiters = new Set<Waiter>();
  private timer: NodeJS.Timeout | null = null;
  private polling = false;

  constructor(
    private readonly db: Knex,
    private readonly topic: string,
    private readonly pollMs = 5,
  ) {}

  /** Called by an in-process projector after each commit. */
  /** The next offset to apply per partition, as far as this process has heard. */
  appliedOffsets(): ReadonlyMap<number, number> {
    return this.applied;
  }

  noteApplied(partition: number, nextOffset: number): void {
    if ((this.applied.get(partition) ?? 0) < nextOffset) this.applied.set(partition, nextOffset);
    this.settle();
  }

  /** Resolves true once every position is applied, false at the deadline. */
  async waitFor(positions: readonly LogPosition[], timeoutMs: number): Promise<boolean> {
    const pending = positions.filter((p) => !this.isApplied(p));
    if (pending.length === 0) return true;
    let timeout: NodeJS.Timeout | undefined;
    const own = new Set<Waiter>();
    const all = Promise.all(
      pending.map(
        (p) =>
          new Promise<void>((resolve) => {
            const waiter = { partition: p.partition, offset: p.offset, resolve };
            own.add(waiter);
            this.waiters.add(waiter);
          }),
      ),
    ).then(() => true);
    const deadline = new Promise<boolean>((resolve) => {
      timeout = setTimeout(() => resolve(false), timeoutMs);
    });
    this.schedulePoll();
    try {
      return await Promise.race([all, deadline]);
    } finally {
      clearTimeout(timeout);
      for (const waiter of own) this.waiters.delete(waiter);
    }
  }

  /** Whether every position is projected, as the store says now. */
  async isProjected(positions: readonly LogPosition[]): Promise<boolean> {
    if (positions.every((p) => this.isApplied(p))) return true;
    for (const [partition, next] of await appliedOffsets(this.db, this.topic))
      this.noteApplied(partition, next);
    return positions.every((p) => this.isApplied(p));
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const waiter of this.waiters) waiter.resolve();
    this.waiters.clear();
  }

  private isApplied(position: LogPosition): boolean {
    return (this.applied.get(position.partition) ?? 0) > position.offset;
  }

  private settle(): void {
    for (const waiter of [...this.waiters]) {
      if (this.isApplied(waiter)) {
        this.waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  private schedulePoll(): void {
    if (this.timer || this.polling || this.waiters.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.poll();
    }, this.pollMs);
  }

  private async poll(): Promise<void> {
    this.polling = true;
    try {
      const applied = await appliedOffsets(this.db, this.topic);
      for (const [partition, next] of applied) this.noteApplied(partition, next);
    } catch {
      // The store is unreachable for now; waiters time out if it stays so.
    } finally {
      this.polling = false;
      this.schedulePoll();
    }
  }
}
