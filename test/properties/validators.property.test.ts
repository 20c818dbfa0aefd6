import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  InvalidCommand,
  decodeCommand,
  encodeCommand,
  validateCommand,
  type CommandLimits,
  type CommandRecord,
} from '../../src/commands/command-record.js';
import { decidePublish } from '../../src/commands/publish.js';
import { emptyBitmap } from '../../src/domain/read-bitmap.js';
import { decodeReadBlock, encodeReadBlock } from '../../src/domain/read-blocks.js';
import { REQUEST_TYPES } from '../../src/protocol/websocket.js';
import { parseClientMessage } from '../../src/transports/ws/parse-request.js';

const limits: CommandLimits = {
  bodyLimitBytes: 4096,
  maxRecipients: 50,
  maxEventIdLength: 128,
  maxSeqsPerCommand: 100,
};

const uid = fc.integer({ min: 0, max: 0xffffffff });
const seq = fc.integer({ min: 1, max: 0xffffffff });
const eventId = fc.stringMatching(/^[\x21-\x7e]{1,128}$/);
// Through JSON once, as every body arrives (-0 becomes 0, for one).
const smallJson = fc
  .jsonValue({ maxDepth: 3 })
  .map((v) => JSON.parse(JSON.stringify(v)) as unknown)
  .filter((v) => Buffer.byteLength(JSON.stringify(v)) <= 4096);

const validCommand: fc.Arbitrary<CommandRecord> = fc.oneof(
  fc.record(
    {
      v: fc.constant(1 as const),
      type: fc.constant('publish' as const),
      id: eventId,
      to: fc.uniqueArray(uid, { minLength: 1, maxLength: 50 }),
      body: smallJson,
      createTime: fc.integer({ min: 0, max: 2 ** 45 }),
      from: uid,
    },
    { requiredKeys: ['v', 'type', 'id', 'to', 'body'] },
  ),
  fc.record({
    v: fc.constant(1 as const),
    type: fc.constant('markRead' as const),
    uid,
    seqs: fc.uniqueArray(seq, { minLength: 1, maxLength: 100 }),
  }),
  fc.record({
    v: fc.constant(1 as const),
    type: fc.constant('markUnread' as const),
    uid,
    seqs: fc.uniqueArray(seq, { minLength: 1, maxLength: 100 }),
  }),
  fc.record({
    v: fc.constant(1 as const),
    type: fc.constant('markReadUpTo' as const),
    uid,
    upTo: seq,
  }),
);

describe('command validation (properties)', () => {
  it('should either accept or throw InvalidCommand for any JSON value — never anything else', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        try {
          validateCommand(value, limits);
        } catch (err) {
          expect(err).toBeInstanceOf(InvalidCommand);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('should reject near-misses of valid commands with a reason naming a field', () => {
    const mutated = fc
      .tuple(validCommand, fc.string(), fc.jsonValue())
      .map(([command, key, value]) => ({ ...command, [key || 'x']: value }));
    fc.assert(
      fc.property(mutated, (value) => {
        try {
          validateCommand(value, limits);
        } catch (err) {
          expect(err).toBeInstanceOf(InvalidCommand);
          expect((err as InvalidCommand).field.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('should accept every valid command and round-trip it through the log encoding', () => {
    fc.assert(
      fc.property(validCommand, (command) => {
        const canonical = validateCommand(command, limits);
        expect(decodeCommand(encodeCommand(canonical), limits)).toEqual(canonical);
        if (command.type === 'markRead' || command.type === 'markUnread') {
          expect(canonical).toMatchObject({ seqs: [...command.seqs].sort((a, b) => a - b) });
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('should accept any bytes from the log or throw InvalidCommand', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          decodeCommand(Buffer.from(bytes), limits);
        } catch (err) {
          expect(err).toBeInstanceOf(InvalidCommand);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('should keep each recipient once, in first-seen order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 1, maxLength: 60 }),
        (to) => {
          const unique = [...new Set(to)];
          const command = decidePublish({ to, body: 1 }, limits, 1);
          expect(command.to).toEqual(unique);
        },
      ),
    );
  });
});

describe('WebSocket message parser (properties)', () => {
  it('should never throw on any text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 500 }), (text) => {
        const result = parseClientMessage(text);
        expect(typeof result.ok).toBe('boolean');
      }),
      { numRuns: 3000 },
    );
  });

  it('should never throw on any JSON and accept exactly the known types with a valid reqId', () => {
    const message = fc.record(
      {
        type: fc.oneof(fc.constantFrom(...REQUEST_TYPES), fc.string()),
        reqId: fc.oneof(
          fc.string({ maxLength: 80 }),
          fc.integer(),
          fc.constant(null),
          fc.jsonValue(),
        ),
        after: fc.jsonValue(),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(message, (value) => {
        const result = parseClientMessage(JSON.stringify(value));
        const knownType = (REQUEST_TYPES as readonly unknown[]).includes(value.type);
        const reqId = value.reqId;
        const validId =
          (typeof reqId === 'string' && reqId.length >= 1 && reqId.length <= 64) ||
          (typeof reqId === 'number' && Number.isSafeInteger(reqId));
        const noId = reqId === undefined || reqId === null;
        const expectOk = knownType && (validId || (noId && value.type === 'ping'));
        expect(result.ok).toBe(expectOk);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('seed read blocks (properties)', () => {
  it('should decode to exactly the read seqs within the run', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5000 }),
        fc.integer({ min: 0, max: 300 }),
        fc.uniqueArray(fc.integer({ min: 1, max: 6000 })),
        (from, length, read) => {
          const to = from + length;
          const bitmap = emptyBitmap();
          bitmap.addMany(read);
          const block = encodeReadBlock(bitmap, from, to)!;
          expect(block.len).toBe(length + 1);
          expect(decodeReadBlock(block)).toEqual(
            read.filter((s) => s >= from && s <= to).sort((a, b) => a - b),
          );
        },
      ),
      { numRuns: 500 },
    );
  });
});
