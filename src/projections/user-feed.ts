import type { PublishCommand } from '../commands/command-record.js';
import { MAX_SEQ } from '../domain/uid.js';
import type { LogRecord } from '../log/log.js';
import { precedes, type ProjectionBatch } from './projection-batch.js';

/**
 * Fans a published event out to its recipients on this partition: each new (event id, uid)
 * gets the user's next seq, so seqs are a pure function of log order. An id already delivered
 * to a user (re-sent, replayed, or forwarded twice) is skipped without using a seq.
 */
export const userFeedProjection = {
  name: 'user-feed',

  canHandle(command: { type: string }): command is PublishCommand {
    return command.type === 'publish';
  },

  apply(
    batch: ProjectionBatch,
    command: PublishCommand,
    uids: readonly number[],
    record: LogRecord,
  ): number {
    let delivered = 0;
    let body: string | null = null;
    for (const uid of uids) {
      if (batch.wasDelivered(command.id, uid)) continue;
      const user = batch.user(uid);
      if (user.headSeq >= MAX_SEQ) continue;
      // Log time never goes backwards per user, so expiring by it removes a prefix of the feed.
      const ts = Math.max(user.lastTs, record.timestamp);
      user.headSeq += 1;
      user.lastTs = ts;
      user.headChanged = true;
      user.lastRecord = record;
      batch.markDelivered(command.id, uid);
      batch.deliveries.push({ uid, seq: user.headSeq, eventId: command.id, ts });
      body ??= JSON.stringify(command.body);
      const content = {
        body,
        createTime: command.createTime ?? record.timestamp,
        sender: command.from ?? null,
      };
      const existing = batch.events.get(command.id);
      if (!existing) {
        batch.events.set(command.id, { eventId: command.id, ...content, ts });
      } else {
        existing.ts = Math.max(existing.ts, ts);
        if (precedes(content, existing)) Object.assign(existing, content);
      }
      delivered++;
    }
    return delivered;
  },
};
