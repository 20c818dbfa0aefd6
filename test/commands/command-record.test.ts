import { describe, expect, it } from 'vitest';
import {
  InvalidCommand,
  decodeCommand,
  encodeCommand,
  uidsOf,
  validateCommand,
} from '../../src/commands/command-record.js';
import { commandLimits, loadConfig } from '../../src/config.js';

const limits = commandLimits(loadConfig({ env: {} }));

describe('command records (v1)', () => {
  it('should decode what it encodes, for every command type', () => {
    const commands = [
      { v: 1, type: 'publish', id: 'e1', to: [1, 2], body: { n: [1, 'two'] }, createTime: 9 },
      { v: 1, type: 'markRead', uid: 1, seqs: [1, 2] },
      { v: 1, type: 'markReadUpTo', uid: 1, upTo: 40 },
      { v: 1, type: 'markUnread', uid: 1, seqs: [3] },
      { v: 1, type: 'expire', uid: 1, floor: 7 },
    ] as const;
    for (const command of commands) {
      expect(decodeCommand(encodeCommand(validateCommand(command, limits)), limits)).toEqual(
        command,
      );
    }
  });

  it('should name the uids a command touches', () => {
    expect(
      uidsOf(validateCommand({ v: 1, type: 'publish', id: 'e', to: [4, 5], body: 1 }, limits)),
    ).toEqual([4, 5]);
    expect(
      uidsOf(validateCommand({ v: 1, type: 'markReadUpTo', uid: 8, upTo: 1 }, limits)),
    ).toEqual([8]);
  });

  it.each([
    [null, 'record', /empty record value/],
    [Buffer.from('{nope'), 'record', /not valid JSON/],
    [Buffer.from('[1]'), 'record', /must be a JSON object/],
    [Buffer.from('{"v":2,"type":"publish"}'), 'v', /unsupported schema version 2/],
    [Buffer.from('{"v":1,"type":"shout"}'), 'type', /unknown command type "shout"/],
    [Buffer.from('{"v":1,"type":"markRead","uid":1,"seqs":[1],"x":1}'), 'x', /unknown field "x"/],
  ])('should refuse junk %# as a bad request naming %s', (value, field, message) => {
    let thrown: unknown;
    try {
      decodeCommand(value, limits);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(InvalidCommand);
    expect(thrown).toMatchObject({ code: 'MINIPUSH_BAD_REQUEST', field, httpStatus: 400 });
    expect((thrown as Error).message).toMatch(message);
  });

  it.each([
    ['{"v":1,"type":"expire","uid":1}', 'floor'],
    ['{"v":1,"type":"expire","uid":1,"floor":-1}', 'floor'],
    ['{"v":1,"type":"expire","uid":1,"floor":"3"}', 'floor'],
    ['{"v":1,"type":"expire","floor":3}', 'uid'],
    ['{"v":1,"type":"expire","uid":1,"floor":3,"upTo":4}', 'upTo'],
  ])('should refuse the expire record %s, naming %s', (value, field) => {
    let thrown: unknown;
    try {
      decodeCommand(Buffer.from(value), limits);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(InvalidCommand);
    expect(thrown).toMatchObject({ field, httpStatus: 400 });
    expect((thrown as Error).message).toMatch(new RegExp(field));
  });
});
