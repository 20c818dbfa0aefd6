import type { StateCommand } from '../commands/command-record.js';
import type { InboxStateName } from '../domain/inbox-state.js';
import type { ReadBitmap } from '../domain/read-bitmap.js';
import type { LogRecord } from '../log/log.js';
import type { ProjectionBatch } from './projection-batch.js';

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

/** What each state command does: which state, added or removed, and whether seen follows. */
const MARKS: Readonly<
  Record<StateCommand['type'], { state: InboxStateName; add: boolean; seenToo?: boolean }>
> = {
  markRead: { state: 'read', add: true, seenToo: true },
  markReadUpTo: { state: 'read', add: true, seenToo: true },
  markUnread: { state: 'read', add: false },
  markSeen: { state: 'seen', add: true },
  markSeenUpTo: { state: 'seen', add: true },
  archive: { state: 'archived', add: true },
  archiveUpTo: { state: 'archived', add: true },
  unarchive: { state: 'archived', add: false },
  unarchiveUpTo: { state: 'archived', add: false },
};

/** Applies one mark to a bitmap; the number of seqs whose state flipped. */
function flip(bitmap: ReadBitmap, command: StateCommand, add: boolean, stored: Stored): number {
  if ('upTo' in command) {
    return add ? addUpTo(bitmap, command.upTo, stored) : removeUpTo(bitmap, command.upTo, stored);
  }
  return add ? addSeqs(bitmap, command.seqs, stored) : removeSeqs(bitmap, command.seqs, stored);
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
    return Object.hasOwn(MARKS, command.type);
  },

  apply(batch: ProjectionBatch, command: StateCommand, record: LogRecord): number {
    const user = batch.user(command.uid);
    const stored: Stored = { lo: user.floorSeq, hi: user.headSeq };
    const mark = MARKS[command.type];
    let changed = 0;
    let seenFlipped = 0;
    if (stored.hi >= stored.lo) {
      changed = flip(batch.bitmapOf(user, mark.state), command, mark.add, stored);
      if (mark.seenToo) seenFlipped = flip(batch.bitmapOf(user, 'seen'), command, true, stored);
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
