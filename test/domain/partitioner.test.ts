import { Partitioners } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { partitionOfUid } from '../../src/domain/partitioner.js';

describe('partitionOfUid', () => {
  it("should match Kafka's default partitioner for a uid key", () => {
    const kafkaPartitioner = Partitioners.DefaultPartitioner();
    for (const partitions of [1, 3, 8, 64]) {
      const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({
        partitionId,
        leader: 0,
        replicas: [0],
        isr: [0],
        offlineReplicas: [],
        partitionErrorCode: 0,
      }));
      for (const uid of [0, 1, 2, 7, 42, 1000, 65535, 123456789, 4294967295]) {
        const expected = kafkaPartitioner({
          topic: 't',
          partitionMetadata,
          message: { key: String(uid), value: null },
        });
        expect(partitionOfUid(uid, partitions)).toBe(expected);
      }
    }
  });
});
