import { describe, expect, it, vi } from 'vitest';
import { SharedMessage } from '../../src/hubs/shared-message.js';

describe('SharedMessage', () => {
  it('should encode once per encoder and hand every caller the same bytes', () => {
    // Given a message and a transport's encoder
    const message = new SharedMessage(Buffer.from('{"type":"head"}'));
    const frame = vi.fn((bytes: Buffer) =>
      Buffer.concat([Buffer.from([0x81, bytes.length]), bytes]),
    );
    // When five sessions ask for its frame
    const frames = Array.from({ length: 5 }, () => message.encoded(frame));
    // Then it was framed once and all got that one buffer
    expect(frame).toHaveBeenCalledTimes(1);
    expect(new Set(frames).size).toBe(1);
    expect(frames[0]!.subarray(2).toString()).toBe('{"type":"head"}');
  });

  it('should encode again for another encoder', () => {
    const message = new SharedMessage(Buffer.from('x'));
    const upper = (bytes: Buffer) => Buffer.from(bytes.toString().toUpperCase());
    const twice = (bytes: Buffer) => Buffer.concat([bytes, bytes]);
    expect(message.encoded(upper).toString()).toBe('X');
    expect(message.encoded(twice).toString()).toBe('xx');
    expect(message.bytes.toString()).toBe('x');
  });

  it('should keep each encoding when sessions of two transports alternate', () => {
    // Given a user with a WebSocket and an SSE session here
    const message = new SharedMessage(Buffer.from('x'));
    const ws = vi.fn((bytes: Buffer) => Buffer.concat([Buffer.from('w'), bytes]));
    const sse = vi.fn((bytes: Buffer) => Buffer.concat([Buffer.from('s'), bytes]));
    // When their sessions ask in turns
    const got = [ws, sse, ws, sse, sse, ws].map((encode) => message.encoded(encode).toString());
    // Then each transport's encoding was made once and each got its own
    expect(got).toEqual(['wx', 'sx', 'wx', 'sx', 'sx', 'wx']);
    expect(ws).toHaveBeenCalledTimes(1);
    expect(sse).toHaveBeenCalledTimes(1);
  });
});
