import type { Knex } from 'knex';
import { dialectOf } from './database.js';

interface Member {
  readonly work: (trx: Knex.Transaction) => Promise<unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * Transactions that commit together on SQLite, as a database's group commit does: every
 * transaction asked for while the connection is busy (or within the same event-loop turn) runs
 * in the next shared transaction, each in its own savepoint, and all of them commit at once.
 *
 * SQLite has one connection here, so transactions run one after another anyway; what grouping
 * saves is each one's BEGIN, COMMIT and write of its pages to the WAL. A member that fails rolls
 * back to its savepoint and rejects alone; if the shared commit fails, every member rejects and
 * none of their writes stand. On MySQL each transaction runs on its own pooled connection, as
 * `db.transaction` does: grouping them would serialise what runs in parallel there.
 */
export class CommitGroup {
  private queue: Member[] = [];
  private busy = false;
  private readonly grouped: boolean;

  constructor(private readonly db: Knex) {
    this.grouped = dialectOf(db) === 'sqlite';
  }

  transaction<T>(work: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
    if (!this.grouped) return this.db.transaction(work);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ work, resolve: resolve as (value: unknown) => void, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.busy || this.queue.length === 0) return;
    this.busy = true;
    // One turn of the event loop lets the members asked for in the same turn join.
    setImmediate(() => void this.commit());
  }

  private async commit(): Promise<void> {
    const members = this.queue;
    this.queue = [];
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; err: unknown }> = [];
    try {
      await this.db.transaction(async (trx) => {
        for (const member of members) {
          try {
            outcomes.push({ ok: true, value: await trx.transaction((sp) => member.work(sp)) });
          } catch (err) {
            outcomes.push({ ok: false, err });
          }
        }
      });
      members.forEach((member, i) => {
        const outcome = outcomes[i]!;
        if (outcome.ok) member.resolve(outcome.value);
        else member.reject(outcome.err);
      });
    } catch (err) {
      // A failed COMMIT: none of the members' writes stand (the store's pool rolls the
      // transaction back before the connection serves again, see openDatabase).
      for (const member of members) member.reject(err);
    } finally {
      this.busy = false;
      this.schedule();
    }
  }
}
