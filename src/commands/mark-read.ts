import {
  validateSeqs,
  validateUid,
  type CommandLimits,
  type MarkReadCommand,
} from './command-record.js';

/** Marks the given seqs of a user read. Seqs outside [floorSeq, headSeq] are ignored when applied. */
export function decideMarkRead(
  uid: unknown,
  seqs: unknown,
  limits: CommandLimits,
): MarkReadCommand {
  return { v: 1, type: 'markRead', uid: validateUid(uid, 'uid'), seqs: validateSeqs(seqs, limits) };
}
