import { randomBytes, randomInt } from 'node:crypto';
import { toAppendRecords } from '../../src/commands/command-writer.js';
import {
  encodeCommand,
  type CommandRecord,
  type PublishCommand,
} from '../../src/commands/command-record.js';
import { keyOfUid, partitionOfUid } from '../../src/domain/partitioner.js';
import type { AppendRecord } from '../../src/log/log.js';

function pick<T>(items: readonly T[]): T {
  return items[randomInt(items.length)]!;
}

/**
 * A random mix of commands as business servers send them: single and multi-recipient publishes,
 * some with a createTime or a sender, re-sent ids (retries, sometimes with one more recipient or
 * a new createTime), publishes produced to any partition, read marks of every kind (a few on the
 * wrong partition) and some junk. Remembers which (event id, uid) pairs the log accepted.
 */
export class Workload {
  readonly uids: number[];
  /** Recipients per accepted event id. */
  readonly accepted = new Map<string, Set<number>>();
  /** Publishes sent per uid: an upper bound of its head, to aim read marks. */
  private readonly sent = new Map<number, number>();
  private readonly published: PublishCommand[] = [];
  private readonly tag = randomBytes(3).toString('hex');
  private counter = 0;

  constructor(
    private readonly partitions: number,
    users: number,
    /**
     * Re-send earlier ids. Off where events expire: an id re-sent after its delivery expired is
     * delivered again (the dedupe window is the TTL), which a replay of the log cannot know.
     */
    private readonly resend = true,
  ) {
    const uids = new Set<number>();
    while (uids.size < users) uids.add(randomInt(1, 2 ** 32 - 1));
    this.uids = [...uids];
  }

  /** Records for the next `size` commands, and a function to call once the log accepted them. */
  burst(size: number): { records: AppendRecord[]; accept: () => void } {
    const records: AppendRecord[] = [];
    const publishes: Array<{ id: string; to: readonly number[] }> = [];
    for (let i = 0; i < size; i++) {
      const roll = randomInt(100);
      if (roll < 50) {
        publishes.push(this.publish([pick(this.uids)], records, false));
      } else if (roll < 62) {
        const to = new Set<number>();
        const count = randomInt(2, 7);
        while (to.size < count) to.add(pick(this.uids));
        publishes.push(this.publish([...to], records, false));
      } else if (roll < 70 && this.resend && this.published.length > 0) {
        const earlier = pick(this.published.slice(-500));
        const to = randomInt(3) === 0 ? [...earlier.to, pick(this.uids)] : earlier.to;
        // A retry through the API is stamped with a new createTime; a raw one is not.
        const createTime = randomInt(2) === 0 ? Date.now() : earlier.createTime;
        records.push(
          ...this.route({
            ...earlier,
            to,
            ...(createTime === undefined ? {} : { createTime }),
          }),
        );
        publishes.push({ id: earlier.id, to });
      } else if (roll < 75) {
        const to = [pick(this.uids), pick(this.uids)];
        publishes.push(this.publish(to, records, true));
      } else if (roll < 76) {
        records.push({
          partition: randomInt(this.partitions),
          key: null,
          value: Buffer.from('{"v":1,'),
        });
      } else {
        const uid = pick(this.uids);
        const head = this.sent.get(uid) ?? 0;
        const seq = () => randomInt(1, head + 3);
        const seqs = () => [...new Set([seq(), seq(), seq()])].sort((a, b) => a - b);
        // Read marks most, then the seen, archive and unarchive marks, each form of each.
        const kind = randomInt(20);
        const command: CommandRecord =
          kind < 6
            ? { v: 1, type: 'markRead', uid, seqs: seqs() }
            : kind < 9
              ? { v: 1, type: 'markReadUpTo', uid, upTo: seq() }
              : kind < 11
                ? { v: 1, type: 'markUnread', uid, seqs: [seq()] }
                : kind < 13
                  ? { v: 1, type: 'markSeen', uid, seqs: seqs() }
                  : kind < 14
                    ? { v: 1, type: 'markSeenUpTo', uid, upTo: seq() }
                    : kind < 16
                      ? { v: 1, type: 'archive', uid, seqs: seqs() }
                      : kind < 17
                        ? { v: 1, type: 'archiveUpTo', uid, upTo: seq() }
                        : kind < 19
                          ? { v: 1, type: 'unarchive', uid, seqs: [seq()] }
                          : { v: 1, type: 'unarchiveUpTo', uid, upTo: seq() };
        if (randomInt(20) === 0) {
          const owner = partitionOfUid(uid, this.partitions);
          records.push({
            partition: (owner + 1) % this.partitions,
            key: keyOfUid(uid),
            value: encodeCommand(command),
          });
        } else {
          records.push(...this.route(command));
        }
      }
    }
    return {
      records,
      accept: () => {
        for (const { id, to } of publishes) {
          let set = this.accepted.get(id);
          if (!set) this.accepted.set(id, (set = new Set()));
          for (const uid of to) {
            if (!set.has(uid)) this.sent.set(uid, (this.sent.get(uid) ?? 0) + 1);
            set.add(uid);
          }
        }
      },
    };
  }

  private publish(
    to: number[],
    records: AppendRecord[],
    anyPartition: boolean,
  ): { id: string; to: readonly number[] } {
    const id = `w-${this.tag}-${this.counter++}`;
    const body = { n: this.counter, text: 'x'.repeat(randomInt(40)) };
    const command: PublishCommand = {
      v: 1,
      type: 'publish',
      id,
      to,
      body,
      ...(randomInt(4) === 0 ? { createTime: Date.now() - randomInt(1_000_000) } : {}),
      ...(randomInt(10) === 0 ? { from: pick(this.uids) } : {}),
    };
    if (anyPartition) {
      // As a business server producing without MiniPush's routing: keyed by the event id.
      records.push({
        partition: randomInt(this.partitions),
        key: id,
        value: encodeCommand(command),
      });
    } else {
      records.push(...this.route(command));
    }
    this.published.push(command);
    return { id, to };
  }

  private route(command: CommandRecord): AppendRecord[] {
    return toAppendRecords(command, this.partitions);
  }
}
