import { describe, expect, it } from 'vitest';
import { decidePublish, type PublishInput } from '../../src/commands/publish.js';
import { commandLimits, loadConfig } from '../../src/config.js';

const limits = commandLimits(loadConfig({ env: {} }));
const NOW = 1_700_000_000_000;

describe('decidePublish', () => {
  it('should fix the creation time now and keep the caller’s id', () => {
    // Given a publish without a createTime
    const command = decidePublish({ id: 'order-1', to: [7], body: { a: 1 } }, limits, NOW);
    // Then every partition's copy will carry the same createTime, and the id is the caller's
    expect(command).toEqual({
      v: 1,
      type: 'publish',
      id: 'order-1',
      to: [7],
      body: { a: 1 },
      createTime: NOW,
    });
  });

  it('should generate an id when none is given and remove duplicate recipients in order', () => {
    const command = decidePublish({ to: [3, 1, 3, 2, 1], body: 'x' }, limits, NOW);
    expect(command.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(command.to).toEqual([3, 1, 2]);
  });

  it('should generate time-ordered ids, so the indexes on event ids grow at their end', () => {
    const ids = Array.from(
      { length: 1000 },
      () => decidePublish({ to: [1], body: 1 }, limits, NOW).id,
    );
    // Version 7 (the version nibble), the RFC 9562 variant, unique, and in increasing order.
    for (const id of ids)
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });

  it('should keep a given createTime and sender', () => {
    const command = decidePublish({ to: [1], body: null, createTime: 5, from: 9 }, limits, NOW);
    expect(command).toMatchObject({ createTime: 5, from: 9 });
  });

  it.each([
    [{ to: [], body: 1 }, 'MINIPUSH_INVALID_UID', 'to'],
    [{ to: [-1], body: 1 }, 'MINIPUSH_INVALID_UID', 'to[0]'],
    [{ to: [1] }, 'MINIPUSH_INVALID_EVENT', 'body'],
    [{ to: [1], body: 'x'.repeat(5000) }, 'MINIPUSH_BODY_TOO_LARGE', 'body'],
    [{ id: 'has space', to: [1], body: 1 }, 'MINIPUSH_INVALID_EVENT', 'id'],
    [{ to: [1], body: 1, createTime: -3 }, 'MINIPUSH_INVALID_EVENT', 'createTime'],
    [{ to: [1], body: 1, from: 2 ** 32 }, 'MINIPUSH_INVALID_UID', 'from'],
  ])('should refuse %j with %s naming %s', (input, code, field) => {
    expect(() => decidePublish(input as PublishInput, limits, NOW)).toThrow(
      expect.objectContaining({ code, field }),
    );
  });

  it('should refuse more recipients than the limit with MINIPUSH_TOO_MANY_RECIPIENTS', () => {
    const to = Array.from({ length: 11 }, (_, i) => i);
    expect(() => decidePublish({ to, body: 1 }, { ...limits, maxRecipients: 10 }, NOW)).toThrow(
      expect.objectContaining({ code: 'MINIPUSH_TOO_MANY_RECIPIENTS', field: 'to' }),
    );
  });
});
