import type { ReadCommand } from '../commands/command-record.js';
import type { LogRecord } from '../log/log.js';
import type { ProjectionBatch } from './projection-batch.js';

/**
 * Applies read marks to the user's roaring bitmap of read seqs. Only stored seqs
 * [floorSeq, headSeq] change; each command's result is the number of seqs whose state flipped,
 * and any flip bumps the user's readVersion so every tab converges.
 */
export const readStatesProjection = {
  name: 'read-states',

  canHandle(command: { type: string }): command is ReadCommand {
    return (
      command.type === 'markRead' ||
      command.type === 'markReadUpTo' ||
      command.type === 'markUnread'
    );
  },

  apply(batch: ProjectionBatch, command: ReadCommand, record: LogRecord): number {
    const user = batch.user(command.uid);
    const lo = user.floorSeq;
    const hi = user.headSeq;
    let changed = 0;
    if (hi >= lo) {
      const bitmap = batch.bitmapOf(user);
      switch (command.type) {
        case 'markRead':
          for (const seq of command.seqs) {
            if (seq >= lo && seq <= hi && bitmap.tryAdd(seq)) changed++;
          }
          break;
        case 'markReadUpTo': {
          const top = Math.min(command.upTo, hi);
          if (top >= lo) {
            const before = bitmap.rangeCardinality(lo, top + 1);
            bitmap.addRange(lo, top + 1);
            changed = top - lo + 1 - before;
          }
          break;
        }
        case 'markUnread':
          for (const seq of command.seqs) {
            if (seq >= lo && seq <= hi && bitmap.delete(seq)) changed++;
          }
          break;
        default: {
          const unreachable: never = command;
          throw new Error(`unhandled read command ${JSON.stringify(unreachable)}`);
        }
      }
    }
    if (changed > 0) {
      user.readVersion += 1;
      user.readChanged = true;
      user.lastRecord = record;
    }
    batch.results.push({
      partition: record.partition,
      offset: record.offset,
      changed,
      logTime: record.timestamp,
    });
    return changed;
  },
};
