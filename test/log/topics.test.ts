import type { Admin } from 'kafkajs';
import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { fetchTopicOffsets } from '../../src/log/topics.js';

const { KafkaJSProtocolError } = kafkajs;

/** The one admin call fetchTopicOffsets makes, answering with the given outcomes in turn. */
function adminAnswering(outcomes: Array<Error | Array<{ partition: number; high: string }>>) {
  let calls = 0;
  const admin = {
    fetchTopicOffsets: () => {
      const outcome = outcomes[Math.min(calls++, outcomes.length - 1)]!;
      return outcome instanceof Error ? Promise.reject(outcome) : Promise.resolve(outcome);
    },
  } as unknown as Admin;
  return { admin, calls: () => calls };
}

/** A broker's error as kafkajs raises it. */
function protocolError(message: string, type: string, code: number, retriable: boolean) {
  return new KafkaJSProtocolError(Object.assign(new Error(message), { type, code, retriable }));
}

describe('fetchTopicOffsets', () => {
  it('should ask again while the broker does not yet know the partition’s leader', async () => {
    // Given a broker that answers "not the leader" once, as one does right after a topic is made
    const notLeader = protocolError(
      'This server is not the leader for that topic-partition',
      'NOT_LEADER_FOR_PARTITION',
      6,
      true,
    );
    const { admin, calls } = adminAnswering([notLeader, [{ partition: 0, high: '7' }]]);
    // Then the offsets come from the second answer
    await expect(fetchTopicOffsets(admin, 't')).resolves.toMatchObject([
      { partition: 0, high: '7' },
    ]);
    expect(calls()).toBe(2);
  });

  it('should give up at once on an error a retry cannot mend', async () => {
    const denied = protocolError(
      'Not authorized to access topics',
      'TOPIC_AUTHORIZATION_FAILED',
      29,
      false,
    );
    const { admin, calls } = adminAnswering([denied]);
    await expect(fetchTopicOffsets(admin, 't')).rejects.toBe(denied);
    expect(calls()).toBe(1);
  });
});
