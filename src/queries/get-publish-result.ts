import type { Knex } from 'knex';
import { typed } from '../store/database.js';

/** The seq each recipient got for an event id (the first delivery's, for re-sent ids). */
export async function getEventSeqs(
  db: Knex,
  eventId: string,
  uids: readonly number[],
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let i = 0; i < uids.length; i += 1000) {
    const rows = await typed<Array<{ uid: number; seq: number }>>(
      db('user_events')
        .where('event_id', eventId)
        .whereIn('uid', uids.slice(i, i + 1000))
        .select('uid', 'seq'),
    );
    for (const row of rows) out[String(row.uid)] = row.seq;
  }
  return out;
}

/** How many seqs a read-mark command at this log position changed; null if not known. */
export async function getCommandResult(
  db: Knex,
  topic: string,
  partition: number,
  offset: number,
): Promise<number | null> {
  const row = await typed<{ changed: number } | undefined>(
    db('command_results')
      .where({ topic, log_partition: partition, log_offset: offset })
      .first('changed'),
  );
  return row ? row.changed : null;
}
