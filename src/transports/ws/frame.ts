/**
 * A complete WebSocket text message as a server sends it (RFC 6455 §5.2: FIN, opcode 1, no
 * mask), header and payload in one buffer: built once for all of a user's sessions and written
 * to each socket in one call, where `ws` would frame it again per socket and write header and
 * payload as two buffers.
 */
export function textFrame(payload: Buffer): Buffer {
  const length = payload.length;
  const header = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(header + length);
  frame[0] = 0x81;
  if (length < 126) {
    frame[1] = length;
  } else if (length < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  payload.copy(frame, header);
  return frame;
}
