import {
  decideStateMark,
  validateSeqs,
  validateUid,
  type CommandLimits,
  type MarkReadCommand,
  type MarkReadUpToCommand,
  type MarkTarget,
} from './command-record.js';

/** Marks the given seqs of a user read. Seqs outside [floorSeq, headSeq] are ignored when applied. */
export function decideMarkRead(
  uid: unknown,
  seqs: unknown,
  limits: CommandLimits,
): MarkReadCommand {
  return { v: 1, type: 'markRead', uid: validateUid(uid, 'uid'), seqs: validateSeqs(seqs, limits) };
}

/** Marks the given seqs read, or every stored seq up to `upTo` ("mark all read"). */
export function decideMarkReadTarget(
  uid: unknown,
  target: MarkTarget,
  limits: CommandLimits,
): MarkReadCommand | MarkReadUpToCommand {
  return decideStateMark({ seqs: 'markRead', upTo: 'markReadUpTo' }, uid, target, limits);
}
