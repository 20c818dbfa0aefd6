import { describe, expect, it } from 'vitest';
import {
  parseClientMessage,
  tokenFromSubprotocols,
} from '../../../src/transports/ws/parse-request.js';

describe('parseClientMessage', () => {
  it('should accept a request with its fields and reqId', () => {
    expect(parseClientMessage('{"type":"diff","reqId":"a1","after":3}')).toEqual({
      ok: true,
      request: { type: 'diff', reqId: 'a1', fields: { after: 3 } },
    });
    expect(parseClientMessage('{"type":"ping"}')).toMatchObject({
      ok: true,
      request: { reqId: null },
    });
  });

  it.each([
    ['{', 'message is not valid JSON'],
    ['[1]', 'message must be a JSON object'],
    ['"x"', 'message must be a JSON object'],
    ['{"type":"diff"}', 'diff needs a reqId'],
    [
      '{"type":"diff","reqId":{"a":1}}',
      'reqId must be a string of 1 to 64 characters or an integer',
    ],
    [
      '{"type":"warp","reqId":1}',
      'unknown message type "warp"; expected one of diff, fetch, stats, readStates, markRead, markUnread, markSeen, archive, unarchive, send, refresh, ping',
    ],
  ])('should reject %s with a clear message', (text, message) => {
    expect(parseClientMessage(text)).toMatchObject({
      ok: false,
      code: 'MINIPUSH_BAD_REQUEST',
      message,
    });
  });
});

describe('tokenFromSubprotocols', () => {
  it('should find the bearer.<token> entry', () => {
    expect(tokenFromSubprotocols('minipush.v1, bearer.a.b.c')).toBe('a.b.c');
    expect(tokenFromSubprotocols('minipush.v1')).toBeNull();
    expect(tokenFromSubprotocols(undefined)).toBeNull();
  });
});
