/**
 * Kafka's default partitioner for keyed records: murmur2 of the key's UTF-8 bytes, made
 * positive, modulo the partition count. Matching it means a business server that keys a
 * per-user command by its uid with any standard Kafka client lands on the uid's partition.
 */
export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const r = 24;
  const length = data.length;
  let h = 0x9747b28c ^ length;
  const length4 = length >> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i << 2;
    let k =
      (data[i4]! & 0xff) |
      ((data[i4 + 1]! & 0xff) << 8) |
      ((data[i4 + 2]! & 0xff) << 16) |
      ((data[i4 + 3]! & 0xff) << 24);
    k = Math.imul(k, m);
    k ^= k >>> r;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  const tail = length & 3;
  const index = length4 << 2;
  if (tail === 3) h ^= (data[index + 2]! & 0xff) << 16;
  if (tail >= 2) h ^= (data[index + 1]! & 0xff) << 8;
  if (tail >= 1) {
    h ^= data[index]! & 0xff;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

const encoder = new TextEncoder();

/** The partition that owns every record of this uid. */
export function partitionOfUid(uid: number, partitions: number): number {
  return (murmur2(encoder.encode(String(uid))) & 0x7fffffff) % partitions;
}

/** The record key for a uid: its decimal form, as business servers are told to use. */
export function keyOfUid(uid: number): string {
  return String(uid);
}

/** Uids by the partition that owns them, each list in the order given. */
export function groupByPartition(
  uids: readonly number[],
  partitions: number,
): Map<number, number[]> {
  const byPartition = new Map<number, number[]>();
  for (const uid of uids) {
    const p = partitionOfUid(uid, partitions);
    let list = byPartition.get(p);
    if (!list) byPartition.set(p, (list = []));
    list.push(uid);
  }
  return byPartition;
}
