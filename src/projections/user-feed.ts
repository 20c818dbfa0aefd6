import type { PublishCommand } from '../commands/command-record.js';
import { MAX_SEQ } from '../domain/uid.js';
import type { LogRecord } from '../log/log.js';
import type { ProjectionBatch } from './projection-batch.js';

/**
 * Fans a published event out to its recipients on this partition: each new (event id, uid)
 * gets the user's next seq, so seqs are a pure function of log order. An id already delivered
 * to a user (re-sent, replayed, or forwarded twice) is skipped without using a seq.
 *
 * The partition keeps the content of the first record of an id it applied and gives it to every
 * later recipient: a re-publish with another body or sender is a conflict (reported, not
 * applied as new content). A re-publish's createTime is not compared: a retry through the API
 * is stamped anew, and the first one stays.
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
    const body = JSON.stringify(command.body);
    const sender = command.from ?? null;
    const held = batch.event(command.id);
    let delivered = 0;
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
      if (!batch.event(command.id)) {
        batch.addEvent({
          eventId: command.id,
          body,
          createTime: command.createTime ?? record.timestamp,
          sender,
          ts,
        });
      }
      delivered++;
    }
    if (held && (held.body !== body || held.sender !== sender)) {
      batch.conflict({
        record,
        eventId: command.id,
        reason:
          `idempotency conflict: event id ${command.id} was published before with another ` +
          `${held.body !== body ? 'body' : 'sender'}; the first content stays` +
          (delivered > 0 ? ` and went to the ${delivered} new recipient(s)` : ''),
      });
    }
    return delivered;
  },
};
