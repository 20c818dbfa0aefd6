import { describe, expect, it } from 'vitest';
import { decideMarkRead } from '../../src/commands/mark-read.js';
import { decideMarkReadUpTo } from '../../src/commands/mark-read-up-to.js';
import { decideMarkUnread } from '../../src/commands/mark-unread.js';
import { commandLimits, loadConfig } from '../../src/config.js';

const limits = commandLimits(loadConfig({ env: {} }));

describe('read-mark decisions', () => {
  it('should sort and deduplicate the seqs of a mark read or unread', () => {
    expect(decideMarkRead(7, [5, 1, 5, 3], limits)).toEqual({
      v: 1,
      type: 'markRead',
      uid: 7,
      seqs: [1, 3, 5],
    });
    expect(decideMarkUnread(7, [2, 2], limits)).toEqual({
      v: 1,
      type: 'markUnread',
      uid: 7,
      seqs: [2],
    });
  });

  it('should make "all read up to" a single seq, capped only when applied', () => {
    expect(decideMarkReadUpTo(7, 1_000_000)).toEqual({
      v: 1,
      type: 'markReadUpTo',
      uid: 7,
      upTo: 1_000_000,
    });
  });

  it.each([
    [() => decideMarkRead(-1, [1], limits), 'MINIPUSH_INVALID_UID', 'uid'],
    [() => decideMarkRead(1, [], limits), 'MINIPUSH_INVALID_SEQ', 'seqs'],
    [() => decideMarkRead(1, [0], limits), 'MINIPUSH_INVALID_SEQ', 'seqs[0]'],
    [
      () => decideMarkRead(1, [1, 2, 3], { ...limits, maxSeqsPerCommand: 2 }),
      'MINIPUSH_INVALID_SEQ',
      'seqs',
    ],
    [() => decideMarkUnread(1, 'all', limits), 'MINIPUSH_INVALID_SEQ', 'seqs'],
    [() => decideMarkReadUpTo(1, 0), 'MINIPUSH_INVALID_SEQ', 'upTo'],
    [() => decideMarkReadUpTo('1', 3), 'MINIPUSH_INVALID_UID', 'uid'],
  ])(
    'should refuse bad input with the catalogue code naming the field (%#)',
    (run, code, field) => {
      expect(run).toThrow(expect.objectContaining({ code, field }));
    },
  );
});
