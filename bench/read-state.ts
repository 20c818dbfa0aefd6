import {
  decodeBitmap,
  emptyBitmap,
  encodeBitmap,
  unreadCount,
  type ReadBitmap,
} from '../src/domain/read-bitmap.js';
import {
  INBOX_STATES,
  encodeInboxBitmap,
  inboxCounts,
  type InboxBitmaps,
} from '../src/domain/inbox-state.js';
import { encodeReadBlock } from '../src/domain/read-blocks.js';
import { mariadbStore, sqliteStore, timeFilteredDiff, writeFeed } from './lib/filtered-feed.js';
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

/**
 * The inbox of a user who opened it (everything up to the head seen) with `read` read and
 * `archived` seqs archived, as the projector holds it.
 */
function inboxOf(read: ReadBitmap, head: number, archived: number): InboxBitmaps {
  const seen = emptyBitmap();
  seen.addRange(1, head + 1);
  const archive = emptyBitmap();
  for (let i = 0; i < Math.min(archived, head); i++) {
    archive.add(1 + Math.floor(((i + 0.5) * head) / archived));
  }
  return { read, seen, archived: archive };
}

/** Bytes the user's row stores for its states (null columns cost nothing). */
function storedStateBytes(bitmaps: InboxBitmaps): number {
  let bytes = 0;
  for (const name of INBOX_STATES) bytes += encodeInboxBitmap(name, bitmaps)?.length ?? 0;
  return bytes;
}

export const readState: Benchmark = {
  name: 'read-state',
  description:
    'read-state bytes on the wire per format, stored bytes of the read, seen and archived states, the cost of the counts, and a filtered diff against an unfiltered page',
  async run(ctx): Promise<Outcome> {
    const timing = ctx.quick ? 100 : 400;
    const sizes: Array<Record<string, unknown>> = [];
    const rows: Row[] = [];
    const counts: Array<Record<string, unknown>> = [];
    let worstCountNs = 0;
    let worstDecodeCountNs = 0;
    let worstCountsNs = 0;
    const states: Array<Record<string, unknown>> = [];
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

        // All three states of an inbox that was opened (all seen), mostly unarchived.
        for (const archived of [0, 10]) {
          const inbox = inboxOf(decodeBitmap(stored), head, archived);
          const stateBytes = storedStateBytes(inbox);
          const ratio = stateBytes / stored.length;
          const mostlyRead = pattern !== 'random 50%';
          states.push({ pattern, head, archived, readBytes: stored.length, stateBytes, ratio });
          if (archived === 0 || head >= 1_000) {
            rows.push({
              metric: `${pattern}, head ${head.toLocaleString('en-US')}, ${archived} archived: read + seen + archived ÷ read alone`,
              value: ratio,
              unit: '×',
              ...(mostlyRead && archived === 0 ? atMost(ratio, 2) : info()),
              conditions: `stored ${stateBytes} B for the three states, ${stored.length} B for read; all seen`,
            });
          }
          const statesNs = timeNs(() => inboxCounts(inbox, 1, head).unreadCount, timing);
          worstCountsNs = Math.max(worstCountsNs, statesNs);
        }
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
    rows.push({
      metric: 'unread + unseen + archived counts, worst of the 24 inboxes',
      value: worstCountsNs / 1000,
      unit: 'µs',
      ...atMost(worstCountsNs / 1000, 10),
      conditions:
        'inboxCounts on the held bitmaps (0 or 10 archived), one thread; all three counts',
    });

    // A filtered diff on a long feed: the unread tab of 10,000 events, 10 of them unread.
    const filtered: Array<Record<string, unknown>> = [];
    const stores = [sqliteStore()];
    if (ctx.only === null || 'mariadb'.includes(ctx.only.toLowerCase())) {
      stores.push(await mariadbStore((await ctx.services()).mysqlUrl));
    }
    for (const store of stores) {
      try {
        const unread = await writeFeed(store.db, 1, 10_000, 10);
        const timed = await timeFilteredDiff(store.db, 1, 10, ctx.quick ? 20 : 80);
        if (timed.filteredSeqs.join() !== unread.join()) {
          throw new Error(
            `the unread diff answered ${timed.filteredSeqs.join()}, not ${unread.join()}`,
          );
        }
        const ratio = timed.filteredUs / timed.unfilteredUs;
        filtered.push({ store: store.label, ...timed });
        rows.push({
          metric: `${store.label}: diff status=unread (10 of 10,000) ÷ unfiltered page of 10`,
          value: ratio,
          unit: '×',
          ...atMost(ratio, 1),
          conditions: `${timed.filteredUs.toFixed(0)} µs against ${timed.unfilteredUs.toFixed(0)} µs per diff from the store (state row + page), one connection at a time`,
        });
      } finally {
        await store.close();
      }
    }
    return {
      rows,
      details: {
        bytes:
          'JSON text of the read-state field (value of bitmap / blocks / compact / an array of read seqs); body = whole REST answer',
        sizes,
        counts,
        states,
        filtered,
      },
    };
  },
};
