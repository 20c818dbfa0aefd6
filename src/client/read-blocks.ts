import type { ReadBlock } from './protocol.js';

/** The read seqs a block holds, ascending (bit i of the block is seq − i, MSB first). */
export function readSeqsOfBlock(block: ReadBlock): number[] {
  const binary = atob(block.base64);
  const out: number[] = [];
  for (let i = block.len - 1; i >= 0; i--) {
    const byte = binary.charCodeAt(i >> 3);
    if ((byte & (0x80 >> (i & 7))) !== 0) out.push(block.seq - i);
  }
  return out;
}
