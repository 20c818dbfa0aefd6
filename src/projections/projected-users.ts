import type { InboxStateName } from '../domain/inbox-state.js';

/** A user's `user_states` row as this projector last committed or read it. */
export interface ProjectedUser {
  readonly headSeq: number;
  readonly floorSeq: number;
  readonly lastTs: number;
  readonly readVersion: number;
  /** The stored bitmap bytes of each state, as the row holds them (never changed in place). */
  readonly stored: Readonly<Record<InboxStateName, Buffer | null>>;
}

/** Map entry and bookkeeping, roughly what V8 holds besides the bitmap bytes. */
const ENTRY_OVERHEAD_BYTES = 200;

function sizeOf(user: ProjectedUser): number {
  const { read, seen, archived } = user.stored;
  return ENTRY_OVERHEAD_BYTES + (read?.length ?? 0) + (seen?.length ?? 0) + (archived?.length ?? 0);
}

/**
 * The rows of the users this projector's partitions own, kept after each commit so the next
 * slice needs no read of them. Exact because a user's row is written only by the projector of
 * the user's partition, in transactions fenced on that partition's offset: while the fence
 * holds, nobody else wrote it. Whatever may break that (a reload of the partition's checkpoint,
 * a lost assignment, a failed slice) forgets the partition's users. Least recently used users
 * go first once the budget is spent.
 */
export class ProjectedUsers {
  private readonly users = new Map<number, { partition: number; user: ProjectedUser }>();
  private bytes = 0;

  /** @param budgetBytes memory for cached rows; 0 keeps none. */
  constructor(private readonly budgetBytes: number) {}

  get(uid: number, partition: number): ProjectedUser | undefined {
    const entry = this.users.get(uid);
    if (entry?.partition !== partition) return undefined;
    // Map order is the LRU order: a hit moves to the back.
    this.users.delete(uid);
    this.users.set(uid, entry);
    return entry.user;
  }

  put(uid: number, partition: number, user: ProjectedUser): void {
    if (this.budgetBytes <= 0) return;
    const earlier = this.users.get(uid);
    if (earlier) {
      this.bytes -= sizeOf(earlier.user);
      this.users.delete(uid);
    }
    this.users.set(uid, { partition, user });
    this.bytes += sizeOf(user);
    for (const [oldest, entry] of this.users) {
      if (this.bytes <= this.budgetBytes) break;
      this.users.delete(oldest);
      this.bytes -= sizeOf(entry.user);
    }
  }

  forgetPartition(partition: number): void {
    for (const [uid, entry] of this.users) {
      if (entry.partition !== partition) continue;
      this.users.delete(uid);
      this.bytes -= sizeOf(entry.user);
    }
  }

  clear(): void {
    this.users.clear();
    this.bytes = 0;
  }

  get size(): number {
    return this.users.size;
  }

  get usedBytes(): number {
    return this.bytes;
  }
}
