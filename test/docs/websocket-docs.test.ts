import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { matchesDocumented } from '../helpers/doc-examples.js';
import { signUserToken, startStack, type Stack } from '../helpers/stack.js';
import { connect } from '../helpers/ws-client.js';

const doc = path.resolve(import.meta.dirname, '../../docs/websocket.md');

function transcript(): string[] {
  const text = fs.readFileSync(doc, 'utf8');
  const match = /```transcript\n([\s\S]*?)\n```/.exec(text);
  if (!match) throw new Error('docs/websocket.md has no transcript block');
  return match[1]!.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('#'));
}

describe('docs/websocket.md transcript', () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack('embedded', {}, ['api', 'hub', 'projector']);
  });

  afterAll(async () => {
    await stack?.close();
  });

  it('should be what a real session exchanges', async () => {
    const lines = transcript();
    expect(lines.length).toBeGreaterThan(10);
    const socket = await connect(`${stack.url.replace('http', 'ws')}/v1/ws`, {
      token: await signUserToken(42),
    });
    try {
      for (const line of lines) {
        const payload = JSON.parse(line.slice(2)) as Record<string, unknown>;
        if (line.startsWith('> ')) {
          socket.send(payload);
        } else if (line.startsWith('! ')) {
          const res = await stack.call('POST', '/v1/events?wait=true', { body: payload });
          expect(res.status).toBe(200);
        } else if (line.startsWith('< ')) {
          // Nudges and answers may interleave; match by type and reqId.
          const received = await socket.next(
            (m) =>
              m.type === payload.type && (payload.reqId === undefined || m.reqId === payload.reqId),
          );
          matchesDocumented(received, payload);
        } else {
          throw new Error(`unknown transcript line: ${line}`);
        }
      }
    } finally {
      await socket.close();
    }
  });
});
