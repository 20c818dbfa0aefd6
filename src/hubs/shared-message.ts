/**
 * One message for many sessions: a user's `head` nudge goes to each of its sessions, so its JSON
 * is serialised once and each transport's wire encoding of it (a WebSocket frame, an SSE event)
 * is made once, on first use, and every socket of that transport is handed the same bytes.
 */
export class SharedMessage {
  private encoder: ((bytes: Buffer) => Buffer) | null = null;
  private encodedBytes: Buffer | null = null;
  /** Encodings past the first: a user with sessions on both transports. */
  private others: Map<(bytes: Buffer) => Buffer, Buffer> | null = null;

  /** @param bytes the message's JSON text, UTF-8 */
  constructor(readonly bytes: Buffer) {}

  /**
   * The message as `encode` puts it on the wire, computed once per encoder. The first encoder
   * has a slot of its own (the usual case: all of a user's sessions here speak one transport).
   */
  encoded(encode: (bytes: Buffer) => Buffer): Buffer {
    if (this.encoder === null || this.encodedBytes === null) {
      this.encoder = encode;
      this.encodedBytes = encode(this.bytes);
      return this.encodedBytes;
    }
    if (this.encoder === encode) return this.encodedBytes;
    this.others ??= new Map();
    let bytes = this.others.get(encode);
    if (bytes === undefined) this.others.set(encode, (bytes = encode(this.bytes)));
    return bytes;
  }
}
