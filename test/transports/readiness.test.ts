import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/pipeline.js';
import { startStack, type Stack } from '../helpers/stack.js';

/** /readyz against the real broker and database: the consumers' state, not just the process. */
describe('readiness on kafka+mysql', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack('kafka+mysql', {}, ['api', 'hub', 'projector']);
  });

  afterAll(async () => {
    await stack?.close();
  });

  it('should be ready once the projector joined its group and the hub subscribed', async () => {
    expect(await stack.call('GET', '/readyz', { auth: null })).toEqual({
      status: 200,
      body: { status: 'ready', checks: { store: 'ok', log: 'ok', projector: 'ok', hub: 'ok' } },
    });
    expect(await stack.call('GET', '/healthz', { auth: null })).toEqual({
      status: 200,
      body: { status: 'ok' },
    });
  });

  it('should turn unready when the hub’s head-change consumer stops', async () => {
    await stack.runtime.backend.feed.close();
    const res = await eventually(
      () => stack.call('GET', '/readyz', { auth: null }),
      (r) => r.status === 503,
    );
    expect(res.body).toEqual({
      status: 'not ready',
      checks: {
        store: 'ok',
        log: 'ok',
        projector: 'ok',
        hub: 'not subscribed to head changes and session records',
      },
    });
  });

  it('should turn unready when the projector leaves its consumer group', async () => {
    // Closing the log stops its consumers: the projector's member leaves the group.
    await stack.runtime.backend.log.close();
    const res = await eventually(
      () => stack.call('GET', '/readyz', { auth: null }),
      (r) => r.body.checks?.projector !== 'ok',
    );
    expect(res.status).toBe(503);
    expect(res.body.checks.projector).toBe('not a member of the projector consumer group');
    // Liveness is about the process only.
    expect((await stack.call('GET', '/healthz', { auth: null })).status).toBe(200);
  });
});
