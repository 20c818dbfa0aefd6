import {
  decideStateMark,
  type CommandLimits,
  type MarkSeenCommand,
  type MarkSeenUpToCommand,
  type MarkTarget,
} from './command-record.js';

/**
 * Marks seqs seen, or every stored seq up to one (what opening the inbox does): the bell's
 * unseen count drops, the events stay unread.
 */
export function decideMarkSeen(
  uid: unknown,
  target: MarkTarget,
  limits: CommandLimits,
): MarkSeenCommand | MarkSeenUpToCommand {
  return decideStateMark({ seqs: 'markSeen', upTo: 'markSeenUpTo' }, uid, target, limits);
}
