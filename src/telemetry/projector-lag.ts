import type { Knex } from 'knex';
import type { CommandLog } from '../log/log.js';
import { typed } from '../store/database.js';
import type { PartitionLag } from './metrics.js';

/**
 * Per partition of the commands log, records not yet applied: the log's end offset minus the
 * next offset committed in projector_offsets (whichever projector owns the partition).
 */
export async function projectorLag(db: Knex, log: CommandLog): Promise<PartitionLag[]> {
  const [ends, rows] = await Promise.all([
    log.endOffsets(),
    typed<Array<{ log_partition: number; next_offset: number | string }>>(
      db('projector_offsets').where({ topic: log.topic }).select('log_partition', 'next_offset'),
    ),
  ]);
  const next = new Map(rows.map((row) => [row.log_partition, Number(row.next_offset)]));
  const lags: PartitionLag[] = [];
  ends.forEach((end, partition) => {
    lags.push({ partition, lag: Math.max(0, end - (next.get(partition) ?? 0)) });
  });
  return lags;
}
