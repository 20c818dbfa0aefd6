import {
  decideStateMark,
  type CommandLimits,
  type MarkTarget,
  type UnarchiveCommand,
  type UnarchiveUpToCommand,
} from './command-record.js';

/** Brings archived seqs (or every one up to a seq) back into the default view. */
export function decideUnarchive(
  uid: unknown,
  target: MarkTarget,
  limits: CommandLimits,
): UnarchiveCommand | UnarchiveUpToCommand {
  return decideStateMark({ seqs: 'unarchive', upTo: 'unarchiveUpTo' }, uid, target, limits);
}
