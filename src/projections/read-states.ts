import { COMMAND_TYPES, type StateCommand } from '../commands/command-record.js';
import type { ReadBitmap } from '../domain/read-bitmap.js';
import type { LogRecord } from '../log/log.js';
import type { ProjectionBatch } from './projection-batch.js';

const STATE_COMMANDS: ReadonlySet<string> = new Set(
  COMMAND_TYPES.filter((type) => type !== 'publish' && type !== 'expire'),
);

/** Stored seqs [lo, hi] a change may touch. */
interface Stored {
  readonly lo: number;
  readonly hi: number;
}

function addSeqs(bitmap: ReadBitmap, seqs: readonly number[], { lo, hi }: Stored): number {
  let flipped = 0;
  for (const seq of seqs) if (seq >= lo && seq <= hi && bitmap.tryAdd(seq)) flipped++;
  return flipped;
}

function removeSeqs(bitmap: ReadBitmap, seqs: readonly number[], { lo, hi }: Stored): number {
  let flipped = 0;
  for (const seq of seqs) if (seq >= lo && seq <= hi && bitmap.delete(seq)) flipped++;
  return flipped;
}

function addUpTo(bitmap: ReadBitmap, upTo: number, { lo, hi }: Stored): number {
  const top = Math.min(upTo, hi);
  if (top < lo) return 0;
  const before = bitmap.rangeCardinality(lo, top + 1);
  bitmap.addRange(lo, top + 1);
  return top - lo + 1 - before;
}

function removeUpTo(bitmap: ReadBitmap, upTo: number, { lo, hi }: Stored): number {
  const top = Math.min(upTo, hi);
  if (top < lo) return 0;
  const before = bitmap.rangeCardinality(lo, top + 1);
  bitmap.removeRange(lo, top + 1);
  return before;
}

/**
 * Applies read, seen and archived marks to the user's roaring bitmaps. Only stored seqs
 * [floorSeq, headSeq] change; mark read also marks seen. Each command's result is the number of
 * seqs whose named state flipped, and any flip of any state bumps the user's readVersion so
 * every tab converges.
 */
export const readStatesProjection = {
  name: 'read-states',

  canHandle(command: { type: string }): command is StateCommand {
    return STATE_COMMANDS.has(command.type);
  },

  apply(batch: ProjectionBatch, command: StateCommand, record: LogRecord): number {
    const user = batch.user(command.uid);
    const stored: Stored = { lo: user.floorSeq, hi: user.headSeq };
    let changed = 0;
    let seenFlipped = 0;
    if (stored.hi >= stored.lo) {
      switch (command.type) {
        case 'markRead':
          changed = addSeqs(batch.bitmapOf(user, 'read'), command.seqs, stored);
          seenFlipped = addSeqs(batch.bitmapOf(user, 'seen'), command.seqs, stored);
          break;
        case 'markReadUpTo':
          changed = addUpTo(batch.bitmapOf(user, 'read'), command.upTo, stored);
          seenFlipped = addUpTo(batch.bitmapOf(user, 'seen'), command.upTo, stored);
          break;
        case 'markUnread':
          changed = removeSeqs(batch.bitmapOf(user, 'read'), command.seqs, stored);
          break;
        case 'markSeen':
          changed = addSeqs(batch.bitmapOf(user, 'seen'), command.seqs, stored);
          break;
        case 'markSeenUpTo':
          changed = addUpTo(batch.bitmapOf(user, 'seen'), command.upTo, stored);
          break;
        case 'archive':
          changed = addSeqs(batch.bitmapOf(user, 'archived'), command.seqs, stored);
          break;
        case 'archiveUpTo':
          changed = addUpTo(batch.bitmapOf(user, 'archived'), command.upTo, stored);
          break;
        case 'unarchive':
          changed = removeSeqs(batch.bitmapOf(user, 'archived'), command.seqs, stored);
          break;
        case 'unarchiveUpTo':
          changed = removeUpTo(batch.bitmapOf(user, 'archived'), command.upTo, stored);
          break;
        default: {
          const unreachable: never = command;
          throw new Error(`unhandled state command ${JSON.stringify(unreachable)}`);
        }
      }
    }
    if (changed > 0 || seenFlipped > 0) {
      user.readVersion += 1;
      user.stateChanged = true;
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
