import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Partitioners } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  COMMAND_TYPES,
  InvalidCommand,
  validateCommand,
  type CommandLimits,
  type CommandType,
} from '../../src/commands/command-record.js';
import { partitionOfUid } from '../../src/domain/partitioner.js';
import { decodeInboxBitmaps, type InboxStateName } from '../../src/domain/inbox-state.js';
import { HEADERS } from '../../src/log/log.js';
import type { Runtime } from '../../src/runtime.js';
import { commandLimits, loadConfig } from '../../src/config.js';
import { typed } from '../../src/store/database.js';
import { codeBlocks, inlineCode, readDoc, tableRows } from '../helpers/markdown.js';
import { feedOf, startPipeline, waitSettled } from '../helpers/pipeline.js';
import { backendConfig, tempDir, type TestBackend } from '../helpers/services.js';

const run = promisify(execFile);
const doc = readDoc('kafka-commands.md');
const limits: CommandLimits = commandLimits(loadConfig({ env: {} }));

describe('docs/kafka-commands.md', () => {
  it('should show only valid records, one example at least of every command type', () => {
    const types = new Set<CommandType>();
    const examples = codeBlocks(doc, 'json');
    expect(examples.length).toBeGreaterThanOrEqual(5);
    for (const example of examples) {
      const command = validateCommand(JSON.parse(example), limits);
      types.add(command.type);
    }
    expect([...types].sort()).toEqual([...COMMAND_TYPES].sort());
  });

  it('should list exactly the fields the schema accepts', () => {
    const documented = tableRows(doc, 'field').map((row) => inlineCode(row[0]!)[0]);
    expect(documented.sort()).toEqual(
      [
        'v',
        'type',
        'id',
        'to',
        'body',
        'createTime',
        'from',
        'uid',
        'seqs',
        'upTo',
        'floor',
      ].sort(),
    );
  });

  it('should give the dead-letter reasons the projector really gives', () => {
    const rows = tableRows(doc, 'record');
    expect(rows.length).toBeGreaterThanOrEqual(5);
    for (const [record, reason] of rows) {
      const [value] = inlineCode(record!);
      const [message] = inlineCode(reason!);
      let thrown: unknown;
      try {
        validateCommand(JSON.parse(value!), limits);
      } catch (err) {
        thrown = err;
      }
      expect(thrown, value).toBeInstanceOf(InvalidCommand);
      expect((thrown as InvalidCommand).message).toBe(message);
    }
  });

  it('should name the dead-letter headers the projector sets', () => {
    const names = tableRows(doc, 'header').map((row) => inlineCode(row[0]!)[0]);
    expect(names).toEqual([
      HEADERS.deadLetterReason,
      HEADERS.deadLetterField,
      HEADERS.deadLetterSource,
      HEADERS.deadLetterTime,
    ]);
    expect(doc).toContain(`\`${HEADERS.origin}\``);
  });
});

describe('docs/kafka-commands.md examples against Kafka', () => {
  let made: TestBackend;
  let runtime: Runtime;
  let scratch: string;

  beforeAll(async () => {
    made = await backendConfig('kafka+mysql', { roles: ['projector'], partitions: 4 });
    runtime = await startPipeline(made.config);
    scratch = tempDir();
  });

  afterAll(async () => {
    await runtime?.close();
    await made?.cleanup();
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  const readBits = async (uid: number, state: InboxStateName = 'read') => {
    const row = await typed<Record<string, Buffer | null> | undefined>(
      runtime.backend
        .db('user_states')
        .where({ uid })
        .first('read_bitmap', 'seen_bitmap', 'archived_bitmap'),
    );
    const bitmaps = decodeInboxBitmaps({
      read: row?.read_bitmap ?? null,
      seen: row?.seen_bitmap ?? null,
      archived: row?.archived_bitmap ?? null,
    });
    return bitmaps[state].toArray();
  };

  it('should route console-producer lines keyed as shown with the default partitioner', async () => {
    const lines = codeBlocks(doc, 'text')
      .flatMap((block) => block.split('\n'))
      .filter((line) => /^[^|{]+\|\{/.test(line));
    expect(lines).toHaveLength(2);
    // kafka-console-producer's default partitioner is murmur2 of the key, as kafkajs's default.
    const producer = runtime.backend.kafka!.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    await producer.connect();
    try {
      for (const line of lines) {
        const at = line.indexOf('|');
        const [key, value] = [line.slice(0, at), line.slice(at + 1)];
        const command = validateCommand(JSON.parse(value), limits);
        const [result] = await producer.send({
          topic: runtime.backend.topics.commands,
          messages: [{ key, value }],
        });
        if (command.type !== 'publish') {
          expect(key).toBe(String(command.uid));
          expect(result!.partition).toBe(partitionOfUid(command.uid, 4));
        }
        await waitSettled(runtime);
      }
    } finally {
      await producer.disconnect();
    }
    expect(await feedOf(runtime.backend.db, 42)).toEqual([{ seq: 1, event_id: 'order-43-paid' }]);
    expect(await feedOf(runtime.backend.db, 43)).toEqual([{ seq: 1, event_id: 'order-43-paid' }]);
    expect(await readBits(42)).toEqual([1]);
  });

  it('should run the createCommandProducer example as printed', async () => {
    const [example] = codeBlocks(doc, 'ts');
    expect(example).toContain("from 'minipush/producer'");
    const brokers = "brokers: ['kafka-1:9092']";
    const prefix = "topicPrefix: 'minipush'";
    expect(example).toContain(brokers);
    expect(example).toContain(prefix);
    const script = example!
      .replace(brokers, `brokers: ${JSON.stringify(made.config.kafkaBrokers)}`)
      .replace(prefix, `topicPrefix: ${JSON.stringify(made.config.topicPrefix)}`);
    // A project that installed the package: `minipush/producer` resolves through its exports.
    fs.mkdirSync(path.join(scratch, 'node_modules'));
    fs.symlinkSync(
      path.resolve(import.meta.dirname, '../..'),
      path.join(scratch, 'node_modules', 'minipush'),
    );
    fs.writeFileSync(path.join(scratch, 'example.mjs'), script);
    await run(process.execPath, ['example.mjs'], {
      cwd: scratch,
      env: { PATH: process.env.PATH, KAFKAJS_NO_PARTITIONER_WARNING: '1' },
    });
    await waitSettled(runtime);
    const db = runtime.backend.db;
    expect(await feedOf(db, 42)).toEqual([
      { seq: 1, event_id: 'order-43-paid' },
      { seq: 2, event_id: 'order-44-shipped' },
    ]);
    expect(await feedOf(db, 43)).toEqual([
      { seq: 1, event_id: 'order-43-paid' },
      { seq: 2, event_id: 'order-44-shipped' },
    ]);
    // markRead(42, [1]) then markUnread(42, [1]); markReadUpTo(43, 10) stops at the head.
    expect(await readBits(42)).toEqual([]);
    expect(await readBits(43)).toEqual([1, 2]);
    // Read implies seen, and markSeen(42, upTo 10) saw the rest; 43's archived 2 came back.
    expect(await readBits(42, 'seen')).toEqual([1, 2]);
    expect(await readBits(43, 'seen')).toEqual([1, 2]);
    expect(await readBits(43, 'archived')).toEqual([]);
  });

  it('should have the helper throw InvalidCommand naming the field, as the page says', async () => {
    const { createCommandProducer, InvalidCommand: Exported } =
      await import('../../src/commands/producer.js');
    expect(Exported).toBe(InvalidCommand);
    const producer = await createCommandProducer({
      brokers: made.config.kafkaBrokers,
      topicPrefix: made.config.topicPrefix,
    });
    try {
      await expect(producer.publish({ to: [42, -1], body: 1 })).rejects.toMatchObject({
        name: 'InvalidCommand',
        field: 'to[1]',
      });
      await expect(producer.markRead(42, [])).rejects.toBeInstanceOf(InvalidCommand);
    } finally {
      await producer.close();
    }
  });

  it('should have publishMany validate all first, then publish every event', async () => {
    const { createCommandProducer } = await import('../../src/commands/producer.js');
    const producer = await createCommandProducer({
      brokers: made.config.kafkaBrokers,
      topicPrefix: made.config.topicPrefix,
    });
    try {
      await expect(
        producer.publishMany([
          { id: 'many-never', to: [61], body: 1 },
          { to: [62, -1], body: 2 },
        ]),
      ).rejects.toMatchObject({ name: 'InvalidCommand', field: 'to[1]' });
      const ids = await producer.publishMany([
        { id: 'many-1', to: [61, 62, 63, 64, 65], body: { n: 1 } },
        { id: 'many-2', to: [61], body: { n: 2 } },
      ]);
      expect(ids).toEqual(['many-1', 'many-2']);
    } finally {
      await producer.close();
    }
    await waitSettled(runtime);
    const db = runtime.backend.db;
    expect(await feedOf(db, 61)).toEqual([
      { seq: 1, event_id: 'many-1' },
      { seq: 2, event_id: 'many-2' },
    ]);
    for (const uid of [62, 63, 64, 65])
      expect(await feedOf(db, uid)).toEqual([{ seq: 1, event_id: 'many-1' }]);
  });
});
