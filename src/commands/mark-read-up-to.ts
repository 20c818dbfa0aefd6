import { validateSeq, validateUid, type MarkReadUpToCommand } from './command-record.js';

/** "Mark all read": every stored seq up to `upTo` (capped at the head when applied). */
export function decideMarkReadUpTo(uid: unknown, upTo: unknown): MarkReadUpToCommand {
  return {
    v: 1,
    type: 'markReadUpTo',
    uid: validateUid(uid, 'uid'),
    upTo: validateSeq(upTo, 'upTo'),
  };
}
