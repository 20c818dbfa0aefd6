import type { Knex } from 'knex';
import type { LogPosition } from '../log/log.js';
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

/** Why the publishes at these log positions conflicted with earlier content, if any did. */
export async function getPublishConflicts(
  db: Knex,
  topic: string,
  positions: readonly LogPosition[],
  eventId?: string,
): Promise<string[]> {
  if (positions.length === 0) return [];
  const rows = await typed<Array<{ reason: string }>>(
    db('publish_conflicts')
      .where({ topic, ...(eventId === undefined ? {} : { event_id: eventId }) })
      .andWhere((q) => {
        for (const p of positions)
          void q.orWhere({ log_partition: p.partition, log_offset: p.offset });
      })
      .select('reason'),
  );
  return rows.map((row) => row.reason);
}

/** The content an event id was first published with, on any partition; null when none holds it. */
export async function getEventContent(
  db: Knex,
  eventId: string,
): Promise<{ body: string; sender: number | null } | null> {
  const row = await typed<{ body: string; sender: number | null } | undefined>(
    db('events').where({ event_id: eventId }).first('body', 'sender'),
  );
  return row ?? null;
}
