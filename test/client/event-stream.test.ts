import { describe, expect, it } from 'vitest';
import { EventStreamParser, type StreamEvent } from '../../src/client/event-stream.js';

function parse(chunks: Array<string | Uint8Array>, lastEventId = '') {
  const events: StreamEvent[] = [];
  const retries: number[] = [];
  const comments: string[] = [];
  const parser = new EventStreamParser(
    {
      onEvent: (e) => events.push(e),
      onRetry: (ms) => retries.push(ms),
      onComment: (c) => comments.push(c),
    },
    lastEventId,
  );
  for (const chunk of chunks) parser.push(chunk);
  return { events, retries, comments, parser };
}

describe('EventStreamParser', () => {
  it('should dispatch an event per blank line, with its data and the last id', () => {
    const { events, retries, comments } = parse([
      'retry: 2500\n\n: ping\n\nid: 1-0\ndata: {"type":"hello"}\n\ndata: {"type":"kickoff"}\n\n',
    ]);
    expect(retries).toEqual([2500]);
    expect(comments).toEqual(['ping']);
    expect(events).toEqual([
      { type: 'message', data: '{"type":"hello"}', lastEventId: '1-0' },
      // An event without id keeps the one before
      { type: 'message', data: '{"type":"kickoff"}', lastEventId: '1-0' },
    ]);
  });

  it('should join data lines and read CRLF, CR and LF line ends split across chunks', () => {
    const { events } = parse(['event: x\r', '\ndata: a\r', 'data:b\n', 'data', '\r\n\r\n']);
    expect(events).toEqual([{ type: 'x', data: 'a\nb\n', lastEventId: '' }]);
  });

  it('should decode UTF-8 split inside a character, and drop a leading BOM', () => {
    const bytes = new TextEncoder().encode('\uFEFFdata: é€\n\n');
    const { events } = parse([bytes.slice(0, 5), bytes.slice(5, 9), bytes.slice(9)]);
    expect(events).toEqual([{ type: 'message', data: 'é€', lastEventId: '' }]);
  });

  it('should keep the id it started with until the stream sets one, and ignore ids with NUL', () => {
    const { events, parser } = parse(['data: a\n\nid: x\0y\ndata: b\n\nid: 3-1\n\n'], '2-0');
    expect(events.map((e) => e.lastEventId)).toEqual(['2-0', '2-0']);
    // An id on an event without data still counts (a reconnect sends it)
    expect(parser.lastEventId).toBe('3-1');
  });

  it('should not dispatch an event the stream has not finished', () => {
    const { events } = parse(['data: half']);
    expect(events).toEqual([]);
  });
});
