import http from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { textFrame } from '../../../src/transports/ws/frame.js';

describe('textFrame', () => {
  it('should put FIN, the text opcode and the length in the header, with no mask', () => {
    // Given payloads at each boundary of the three length encodings (RFC 6455 §5.2)
    const cases = [
      { length: 0, header: [0x81, 0] },
      { length: 125, header: [0x81, 125] },
      { length: 126, header: [0x81, 126, 0, 126] },
      { length: 65_535, header: [0x81, 126, 0xff, 0xff] },
      { length: 65_536, header: [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0] },
    ];
    for (const { length, header } of cases) {
      // When each is framed
      const payload = Buffer.alloc(length, 'x');
      const frame = textFrame(payload);
      // Then the header says so and the payload follows unchanged
      expect([...frame.subarray(0, header.length)]).toEqual(header);
      expect(frame.subarray(header.length).equals(payload)).toBe(true);
    }
  });

  describe('written to a real connection', () => {
    const server = http.createServer();
    const wss = new WebSocketServer({ noServer: true });
    let url = '';
    const payloads = [0, 1, 125, 126, 200, 65_535, 65_536, 70_000].map((n) =>
      // Multi-byte characters: the length is in bytes, not characters.
      Buffer.from(JSON.stringify({ type: 'head', pad: 'é'.repeat(Math.max(0, n - 30) >> 1) })),
    );

    beforeAll(async () => {
      server.on('upgrade', (request, socket, head) => {
        wss.handleUpgrade(request, socket, head, () => {
          // Frames go straight to the TCP connection, as the hub writes shared messages.
          for (const payload of payloads) socket.write(textFrame(payload));
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });

    afterAll(async () => {
      for (const client of wss.clients) client.terminate();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    it('should be read by a WebSocket client as the same text messages, in order', async () => {
      const client = new WebSocket(url);
      const received: Array<{ text: string; binary: boolean }> = [];
      await new Promise<void>((resolve, reject) => {
        client.on('message', (data, binary) => {
          received.push({ text: (data as Buffer).toString('utf8'), binary });
          if (received.length === payloads.length) resolve();
        });
        client.on('error', reject);
      });
      client.terminate();
      expect(received.map((m) => m.binary)).toEqual(payloads.map(() => false));
      expect(received.map((m) => m.text)).toEqual(payloads.map((p) => p.toString('utf8')));
    });
  });
});
