import { describe, expect, it } from 'vitest';
import { ProjectedUsers, type ProjectedUser } from '../../src/projections/projected-users.js';

function row(headSeq: number, bitmapBytes = 0): ProjectedUser {
  return {
    headSeq,
    floorSeq: 1,
    lastTs: 0,
    readVersion: 0,
    stored: {
      read: bitmapBytes > 0 ? Buffer.alloc(bitmapBytes) : null,
      seen: null,
      archived: null,
    },
  };
}

describe('ProjectedUsers', () => {
  it('should give a row back only to the partition that put it', () => {
    const users = new ProjectedUsers(1 << 20);
    users.put(7, 2, row(3));
    expect(users.get(7, 2)?.headSeq).toBe(3);
    expect(users.get(7, 1)).toBeUndefined();
  });

  it('should forget every row of a partition and keep the others', () => {
    const users = new ProjectedUsers(1 << 20);
    users.put(1, 0, row(1));
    users.put(2, 1, row(2));
    users.put(3, 0, row(3));
    users.forgetPartition(0);
    expect(users.get(1, 0)).toBeUndefined();
    expect(users.get(3, 0)).toBeUndefined();
    expect(users.get(2, 1)?.headSeq).toBe(2);
    expect(users.size).toBe(1);
  });

  it('should drop the least recently used rows once the budget is spent', () => {
    // Given room for about three rows of 1 KiB
    const users = new ProjectedUsers(3 * 1300);
    users.put(1, 0, row(1, 1024));
    users.put(2, 0, row(2, 1024));
    users.put(3, 0, row(3, 1024));
    // When the first is used again and a fourth arrives
    users.get(1, 0);
    users.put(4, 0, row(4, 1024));
    // Then the one used longest ago is gone, and the budget holds
    expect(users.get(2, 0)).toBeUndefined();
    expect([1, 3, 4].map((uid) => users.get(uid, 0)?.headSeq)).toEqual([1, 3, 4]);
    expect(users.usedBytes).toBeLessThanOrEqual(3 * 1300);
  });

  it('should count a replaced row once', () => {
    const users = new ProjectedUsers(1 << 20);
    users.put(1, 0, row(1, 100));
    const once = users.usedBytes;
    users.put(1, 0, row(2, 100));
    expect(users.usedBytes).toBe(once);
    expect(users.get(1, 0)?.headSeq).toBe(2);
  });

  it('should keep nothing with a budget of 0', () => {
    const users = new ProjectedUsers(0);
    users.put(1, 0, row(1));
    expect(users.get(1, 0)).toBeUndefined();
    expect(users.size).toBe(0);
  });
});
