import type { Knex } from 'knex';
import type { CommandLog } from '../log/log.js';
import { appliedOffsets } from '../projections/checkpoints.js';
import type { PartitionLag } from './metrics.js';

/**
 * Per partition of the commands log, records not yet applied: the log's end offset minus the
 * next offset committed in projector_offsets (whichever projector owns the partition).
 */
export async function projectorLag(db: Knex, log: CommandLog): Promise<PartitionLag[]> {
  const [ends, next] = await Promise.all([log.endOffsets(), appliedOffsets(db, log.topic)]);
  const lags: PartitionLag[] = [];
  ends.forEach((end, partition) => {
    lags.push({ partition, lag: Math.max(0, end - (next.get(partition) ?? 0)) });
  });
  return lags;
}
