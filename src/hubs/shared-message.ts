/**
 * One message for many sessions: a user's `head` nudge goes to each of its sessions, so its JSON
 * is serialised once and each transport's wire encoding of it (a WebSocket frame) is made once,
 * on first use, and every socket is handed the same bytes.
 */
export class SharedMessage {
  private encoder: ((bytes: Buffer) => Buffer) | null = null;
  private encodedBytes: Buffer | null = null;

  /** @param bytes the message's JSON text, UTF-8 */
  constructor(readonly bytes: Buffer) {}

  /**
   * The message as `encode` puts it on the wire, computed once per encoder. One slot: a user's
   * sessions here all speak one transport, so a second encoder only replaces the first.
   */
  encoded(encode: (bytes: Buffer) => Buffer): Buffer {
    if (this.encoder !== encode || this.encodedBytes === null) {
      this.encodedBytes = encode(this.bytes);
      this.encoder = encode;
    }
    return this.encodedBytes;
  }
}
