import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventStreamParser } from '../../src/client/event-stream.js';
import { matchesDocumented } from '../helpers/doc-examples.js';
import { codeBlocks, readDoc } from '../helpers/markdown.js';
import { openStream } from '../helpers/sse-client.js';
import { signUserToken, startStack, type Stack } from '../helpers/stack.js';

/** The documented stream, read with the same rules a client reads it with. */
function documented() {
  const [block] = codeBlocks(readDoc('sse.md'), 'sse');
  if (block === undefined) throw new Error('docs/sse.md has no sse block');
  const events: Array<{ data: unknown; id: string }> = [];
  const retries: number[] = [];
  new EventStreamParser({
    onEvent: (e) => events.push({ data: JSON.parse(e.data), id: e.lastEventId }),
    onRetry: (ms) => retries.push(ms),
  }).push(block);
  return { events, retries };
}

describe('docs/sse.md stream', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack('embedded', {}, ['api', 'hub', 'projector']);
  });

  afterAll(async () => {
    await stack?.close();
  });

  it('should be what a real stream sends', async () => {
    const doc = documented();
    expect(doc.events.length).toBe(2);
    expect(doc.retries).toHaveLength(1);
    const stream = await openStream(`${stack.url}/v1/sse`, { bearer: await signUserToken(42) });
    try {
      await stream.next((m) => m.type === 'hello');
      const published = await stack.call('POST', '/v1/events?wait=true', {
        body: { to: [42], body: { title: 'Your order shipped' } },
      });
      expect(published.status).toBe(200);
      await stream.next((m) => m.type === 'head');
      expect(stream.retries).toHaveLength(1);
      expect(stream.retries[0]).toBeGreaterThanOrEqual(1000);
      expect(stream.retries[0]).toBeLessThanOrEqual(5000);
      doc.events.forEach((event, i) => {
        matchesDocumented(stream.messages[i], event.data);
        expect(stream.ids[i]).toBe(event.id);
      });
    } finally {
      await stream.close();
    }
  });
});
