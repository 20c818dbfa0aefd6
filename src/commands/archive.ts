import {
  decideStateMark,
  type ArchiveCommand,
  type ArchiveUpToCommand,
  type CommandLimits,
  type MarkTarget,
} from './command-record.js';

/**
 * Archives seqs, or every stored seq up to one: they leave the default view and the unread and
 * unseen counts, and stay fetchable with the `archived` filter until they expire.
 */
export function decideArchive(
  uid: unknown,
  target: MarkTarget,
  limits: CommandLimits,
): ArchiveCommand | ArchiveUpToCommand {
  return decideStateMark({ seqs: 'archive', upTo: 'archiveUpTo' }, uid, target, limits);
}
