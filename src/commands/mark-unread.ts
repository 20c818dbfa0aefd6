import {
  validateSeqs,
  validateUid,
  type CommandLimits,
  type MarkUnreadCommand,
} from './command-record.js';

/** Marks the given seqs of a user unread again. */
export function decideMarkUnread(
  uid: unknown,
  seqs: unknown,
  limits: CommandLimits,
): MarkUnreadCommand {
  return {
    v: 1,
    type: 'markUnread',
    uid: validateUid(uid, 'uid'),
    seqs: validateSeqs(seqs, limits),
  };
}
