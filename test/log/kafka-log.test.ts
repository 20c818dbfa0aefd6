import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafka } from '../../src/log/kafka-client.js';
import { KafkaChangeFeed } from '../../src/log/kafka-change-feed.js';
import { KafkaCommandLog } from '../../src/log/kafka-command-log.js';
import { CorkedTopic, SharedProducer } from '../../src/log/kafka-producer.js';
import { fetchTopicOffsets } from '../../src/log/topics.js';
import type { FeedPosition, HeadChange } from '../../src/domain/head-state.js';
import type { LogRecord } from '../../src/log/log.js';
import { ensureTopics, topicNames } from '../../src/log/topics.js';
import { createLogger } from '../../src/logger.js';
import { kafkaBrokers, randomName } from '../helpers/services.js';

describe('Kafka log adapter against the real broker', () => {
  const logger = createLogger('warn');
  const prefix = randomName('mp');
  const kafka = createKafka({
    brokers: kafkaBrokers(),
    clientId: 'test',
    retries: 10,
    log: logger,
  });
  const topics = topicNames(prefix);
  let log: KafkaCommandLog;
  let feed: KafkaChangeFeed;

  beforeAll(async () => {
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, {
      topicPrefix: prefix,
      partitions: 3,
      replicationFactor: 1,
      logRetentionMs: -1,
    });
    await admin.disconnect();
    log = new KafkaCommandLog({ kafka, topics, log: logger });
    feed = new KafkaChangeFeed({ kafka, topics, log: logger, groupPrefix: `${prefix}.feed` });
  });

  afterAll(async () => {
    await feed.close();
    await log.close();
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({
      topics: [topics.commands, topics.heads, topics.deadLetters, topics.sessions],
    });
    await admin.disconnect();
  });

  it('should create the topics with compaction on heads', async () => {
    const admin = kafka.admin();
    await admin.connect();
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: 2, name: topics.heads, configNames: ['cleanup.policy'] }],
    });
    await admin.disconnect();
    expect(described.resources[0]?.configEntries[0]?.configValue).toBe('compact');
    expect(await log.partitionCount()).toBe(3);
  });

  it('should round-trip records in order per partition, starting where the consumer asks', async () => {
    const positions = await log.append([
      { partition: 1, key: 'a', value: Buffer.from('one'), headers: { h: 'x' } },
      { partition: 1, key: 'b', value: Buffer.from('two') },
      { partition: 2, key: 'c', value: Buffer.from('three') },
      { partition: 1, key: 'd', value: Buffer.from('four') },
    ]);
    expect(positions).toEqual([
      { partition: 1, offset: 0 },
      { partition: 1, offset: 1 },
      { partition: 2, offset: 0 },
      { partition: 1, offset: 2 },
    ]);
    expect(await log.endOffsets()).toEqual([0, 3, 1]);

    const seen: LogRecord[] = [];
    let done!: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    const consumer = log.consume({
      group: `${prefix}.g1`,
      // Partition 1 resumes after its first record, as a projector with stored offsets would.
      startOffset: (partition) => Promise.resolve(partition === 1 ? 1 : 0),
      onBatch: (batch) => {
        seen.push(...batch.records);
        if (seen.length === 3) done();
        return Promise.resolve();
      },
    });
    await consumer.ready();
    await finished;
    await consumer.stop();
    const byPartition = (p: number) =>
      seen.filter((r) => r.partition === p).map((r) => r.value?.toString());
    expect(byPartition(1)).toEqual(['two', 'four']);
    expect(byPartition(2)).toEqual(['three']);
    expect(seen.find((r) => r.value?.toString() === 'two')?.key).toBe('b');
  });

  it('should end a batch that outlived its group membership, rejoin and get the records again', async () => {
    // Given a consumer whose batch outlives its 6 s session without a heartbeat, then retries
    // (as the projector does while MariaDB is down) for as long as the batch says it is active,
    const shortSession = new KafkaCommandLog({
      kafka,
      topics,
      log: logger,
      sessionTimeoutMs: 6000,
    });
    await shortSession.append([{ partition: 0, key: 'slow', value: Buffer.from('late') }]);
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const activeAfterLoss: boolean[] = [];
    let deliveries = 0;
    let redelivered!: () => void;
    const again = new Promise<void>((resolve) => (redelivered = resolve));
    const consumer = shortSession.consume({
      group: `${prefix}.g2`,
      startOffset: () => Promise.resolve(0),
      onBatch: async (batch, control) => {
        if (!batch.records.some((r) => r.value?.toString() === 'late')) return;
        deliveries++;
        if (deliveries > 1) return redelivered();
        await sleep(9000);
        for (let attempt = 0; attempt < 40 && control.isActive(); attempt++) {
          await control.heartbeat().catch(() => sleep(250));
        }
        activeAfterLoss.push(control.isActive());
        throw new Error('the store is still down');
      },
    });
    try {
      await consumer.ready();
      // when the coordinator has forgotten the member, the batch is no longer active, and the
      // rejoined member gets the same record again.
      await again;
      expect(activeAfterLoss).toEqual([false]);
      expect(deliveries).toBe(2);
    } finally {
      await consumer.stop();
      await shortSession.close();
    }
  }, 60_000);

  it('should deliver head changes to a subscriber', async () => {
    const received: HeadChange[] = [];
    let done!: () => void;
    const got = new Promise<void>((resolve) => (done = resolve));
    const subscription = await feed.subscribe((changes) => {
      received.push(...changes);
      if (received.length >= 2) done();
    });
    await feed.publish([
      {
        uid: 7,
        headSeq: 3,
        floorSeq: 1,
        unreadCount: 3,
        unseenCount: 3,
        archivedCount: 0,
        readVersion: 0,
      },
      {
        uid: 8,
        headSeq: 1,
        floorSeq: 1,
        unreadCount: 1,
        unseenCount: 1,
        archivedCount: 0,
        readVersion: 0,
      },
    ]);
    await got;
    await subscription.close();
    expect(received.map((c) => [c.uid, c.headSeq]).sort()).toEqual([
      [7, 3],
      [8, 1],
    ]);
  });

  it('should announce a slice of 5,000 users in a few records, the position after them', async () => {
    const changes: HeadChange[] = Array.from({ length: 5000 }, (_, i) => ({
      uid: 10_000 + i,
      headSeq: 1 + i,
      floorSeq: 1,
      unreadCount: 1 + i,
      unseenCount: 1 + i,
      archivedCount: 0,
      readVersion: 0,
      traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`,
    }));
    const position: FeedPosition = { partition: 1, offset: 4242, epoch: 'e1' };
    const received: HeadChange[] = [];
    let changesWhenPositioned = -1;
    let done!: () => void;
    const got = new Promise<void>((resolve) => (done = resolve));
    const subscription = await feed.subscribe((heard, positions) => {
      received.push(...heard);
      if (positions.some((p) => p.offset === position.offset)) {
        changesWhenPositioned = received.length;
        done();
      }
    });
    const admin = kafka.admin();
    await admin.connect();
    try {
      const before = await fetchTopicOffsets(admin, topics.heads);
      // ~700 KB of changes for one partition: one record per change was over the broker's
      // 1 MB batch limit long before 5,000 (MESSAGE_TOO_LARGE).
      await feed.publish(changes, position);
      await got;
      const after = await fetchTopicOffsets(admin, topics.heads);
      const written = (p: number) =>
        Number(after.find((o) => o.partition === p)!.offset) -
        Number(before.find((o) => o.partition === p)!.offset);
      // 500 changes a record, then the position: 11 records, all on the position's partition.
      expect(written(1)).toBe(11);
      expect(written(0) + written(2)).toBe(0);
    } finally {
      await admin.disconnect();
      await subscription.close();
    }
    expect(changesWhenPositioned).toBe(5000);
    expect(received.map((c) => c.uid)).toEqual(changes.map((c) => c.uid));
    expect(received[4999]).toEqual(changes[4999]);
  }, 60_000);

  it('should send records over the byte budget of a request in several, offsets in order', async () => {
    const producer = new SharedProducer(kafka);
    const corked = new CorkedTopic(producer, topics.sessions);
    try {
      const big = (n: number) => ({
        partition: 0,
        key: `big-${n}`,
        value: Buffer.alloc(300_000, n),
      });
      // 1.2 MB for one partition in one send: one request would be refused as too large.
      const [first, second] = await Promise.all([
        corked.send([big(1), big(2), big(3), big(4)]),
        corked.send([big(5), big(6)]),
      ]);
      expect([...first, ...second]).toEqual([0, 1, 2, 3, 4, 5]);
    } finally {
      await producer.close();
    }
  }, 60_000);
});
