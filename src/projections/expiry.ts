import type { ExpireCommand } from '../commands/command-record.js';
import type { LogRecord } from '../log/log.js';
import type { ProjectionBatch } from './projection-batch.js';

/**
 * Removes a user's expired events: the floor rises to the command's (never past the head + 1,
 * never down) and the deliveries below it go. The TTL cleaner finds what expired and writes
 * these commands, so every change to a feed comes from the log, in its order: announced on the
 * heads stream like any other and replayed the same by a rebuild.
 */
export const expiryProjection = {
  name: 'expiry',

  canHandle(command: { type: string }): command is ExpireCommand {
    return command.type === 'expire';
  },

  apply(batch: ProjectionBatch, command: ExpireCommand, record: LogRecord): void {
    const user = batch.user(command.uid);
    const floor = Math.min(command.floor, user.headSeq + 1);
    if (floor <= user.floorSeq) return;
    batch.expire(command.uid, user.floorSeq, floor);
    user.floorSeq = floor;
    user.floorChanged = true;
    user.lastRecord = record;
  },
};
