import {
  decodeBitmap,
  emptyBitmap,
  encodeBitmap,
  unreadCount,
  type ReadBitmap,
} from '../src/domain/read-bitmap.js';
import { encodeReadBlock } from '../src/domain/read-blocks.js';
import { encodeCompact } from '../src/domain/read-compact.js';
import type { Benchmark, Outcome } from './lib/context.js';
import { atLeast, atMost, info, type Row } from './lib/result.js';

const HEADS = [100, 1_000, 10_000, 100_000];

const PATTERNS = {
  'all read': (head: number) => {
    const bitmap = emptyBitmap();
    bitmap.addRange(1, head + 1);
    return bitmap;
  },
  'read but 10 scattered': (head: number, random: () => number) => {
    const bitmap = emptyBitmap();
    bitmap.addRange(1, head + 1);
    const unread = new Set<number>();
    while (unread.size < Math.min(10, head)) unread.add(1 + Math.floor(random() * head));
    for (const seq of unread) bitmap.delete(seq);
    return bitmap;
  },
  'random 50%': (head: number, random: () => number) => {
    const bitmap = emptyBitmap();
    const seqs: number[] = [];
    for (let seq = 1; seq <= head; seq++) if (random() < 0.5) seqs.push(seq);
    bitmap.addMany(seqs);
    return bitmap;
  },
} as const;

type Pattern = keyof typeof PATTERNS;

/** A seeded generator, so every run measures the same inboxes. */
function xorshift(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/** Bytes of each format's read-state field as the REST answer carries it (JSON text). */
function wireBytes(bitmap: ReadBitmap, head: number) {
  const block = encodeReadBlock(bitmap, 1, head);
  const blocks = JSON.stringify(block ? [block] : []);
  const roaring = JSON.stringify(encodeBitmap(bitmap.clone()).toString('base64'));
  const compact = JSON.stringify(encodeCompact(bitmap, 1, head).toString('base64'));
  const array = JSON.stringify(bitmap.toArray());
  const envelope = (field: string, value: string) =>
    Buffer.byteLength(`{"headSeq":${head},"floorSeq":1,"${field}":${value}}`);
  return {
    field: {
      blocks: Buffer.byteLength(blocks),
      roaring: Buffer.byteLength(roaring),
      compact: Buffer.byteLength(compact),
      jsonArray: Buffer.byteLength(array),
    },
    body: {
      blocks: envelope('blocks', blocks),
      roaring: envelope('bitmap', roaring),
      compact: envelope('compact', compact),
      jsonArray: envelope('read', array),
    },
    compactKind: encodeCompact(bitmap, 1, head)[0] ?? null,
  };
}

/** Mean ns per call of `fn` over enough calls to take about `ms`. */
function timeNs(fn: () => unknown, ms: number): number {
  let sink = 0;
  for (let i = 0; i < 1000; i++) sink += Number(fn());
  let calls = 0;
  const started = process.hrtime.bigint();
  const budget = BigInt(ms) * 1_000_000n;
  let elapsed = 0n;
  while (elapsed < budget) {
    for (let i = 0; i < 1000; i++) sink += Number(fn());
    calls += 1000;
    elapsed = process.hrtime.bigint() - started;
  }
  if (sink === -1) process.stdout.write('');
  return Number(elapsed) / calls;
}

export const readState: Benchmark = {
  name: 'read-state',
  description: 'read-state bytes on the wire per format, and the cost of an unread count',
  run(ctx): Promise<Outcome> {
    const timing = ctx.quick ? 100 : 400;
    const sizes: Array<Record<string, unknown>> = [];
    const rows: Row[] = [];
    const counts: Array<Record<string, unknown>> = [];
    let worstCountNs = 0;
    let worstDecodeCountNs = 0;
    for (const [pattern, make] of Object.entries(PATTERNS) as Array<
      [Pattern, (typeof PATTERNS)[Pattern]]
    >) {
      for (const head of HEADS) {
        const bitmap = make(head, xorshift(head * 7919 + pattern.length));
        const bytes = wireBytes(bitmap, head);
        sizes.push({ pattern, head, ...bytes });
        const ratio = bytes.field.blocks / bytes.field.compact;
        const strict = pattern !== 'random 50%' && head >= 1_000;
        rows.push({
          metric: `${pattern}, head ${head.toLocaleString('en-US')}: blocks ÷ compact`,
          value: ratio,
          unit: '×',
          ...(strict ? atLeast(ratio, 8) : atLeast(ratio, 1)),
          conditions: `compact ${bytes.field.compact} B (kind ${bytes.compactKind}), blocks ${bytes.field.blocks} B, roaring ${bytes.field.roaring} B, JSON array ${bytes.field.jsonArray} B`,
        });
        // The stored bitmap, decoded the way the projector and queries hold it.
        const stored = encodeBitmap(bitmap.clone());
        const held = decodeBitmap(stored);
        const countNs = timeNs(() => unreadCount(held, 1, head), timing);
        const decodeCountNs = timeNs(() => unreadCount(decodeBitmap(stored), 1, head), timing);
        worstCountNs = Math.max(worstCountNs, countNs);
        worstDecodeCountNs = Math.max(worstDecodeCountNs, decodeCountNs);
        counts.push({ pattern, head, storedBytes: stored.length, countNs, decodeCountNs });
      }
    }
    rows.push({
      metric: 'unread count, worst of the 12 inboxes',
      value: worstCountNs / 1000,
      unit: 'µs',
      ...atMost(worstCountNs / 1000, 10),
      conditions: 'rangeCardinality on the held roaring bitmap, one thread',
    });
    rows.push({
      metric: 'unread count from the stored bytes (decode + count), worst',
      value: worstDecodeCountNs / 1000,
      unit: 'µs',
      ...info(),
      conditions: 'what a query pays after reading the row',
    });
    return Promise.resolve({
      rows,
      details: {
        bytes:
          'JSON text of the read-state field (value of bitmap / blocks / compact / an array of read seqs); body = whole REST answer',
        sizes,
        counts,
      },
    });
  },
};
