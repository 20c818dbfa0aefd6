import type { Knex } from 'knex';
import { groupByPartition } from '../src/domain/partitioner.js';

/**
 * Event bodies per commands partition, and publish conflicts.
 *
 * Each partition keeps its own copy of an event's content (`events` keyed by partition and id),
 * written once by the first record of that id it applies and never changed: no row is shared
 * between partitions, so projectors of different partitions never wait on each other, and
 * "the first content wins" is a function of each partition's log order, the same on every
 * rebuild. `user_states.log_partition` says which copy a user's deliveries read.
 */

const isMysql = (knex: Knex) =>
  (knex.client as { config: { client: unknown } }).config.client === 'mysql2';

/** The partition count the projections were built with, as the projector recorded it. */
async function recordedPartitions(knex: Knex): Promise<number | null> {
  const rows = await knex('minipush_meta')
    .where('name', 'like', 'partitions:%')
    .select<Array<{ value: string }>>('value');
  const counts = [...new Set(rows.map((row) => Number(row.value)))];
  if (counts.length > 1) {
    throw new Error(
      `the projections hold topics with different partition counts (${counts.join(', ')}); ` +
        'rebuild into a new database instead of migrating this one',
    );
  }
  return counts[0] ?? null;
}

async function fillUserPartitions(knex: Knex): Promise<void> {
  const pending = () =>
    knex('user_states')
      .whereNull('log_partition')
      .orderBy('uid')
      .limit(5000)
      .select<Array<{ uid: number }>>('uid');
  let batch = await pending();
  if (batch.length === 0) return;
  const partitions = await recordedPartitions(knex);
  if (partitions === null) {
    throw new Error('user_states has rows but minipush_meta records no partition count');
  }
  while (batch.length > 0) {
    const byPartition = groupByPartition(
      batch.map((row) => row.uid),
      partitions,
    );
    for (const [partition, uids] of byPartition) {
      await knex('user_states').whereIn('uid', uids).update({ log_partition: partition });
    }
    batch = await pending();
  }
}

function eventsTable(knex: Knex, name: string, perPartition: boolean) {
  return knex.schema.createTable(name, (t) => {
    t.string('event_id', 128).notNullable().collate('utf8mb4_bin');
    if (perPartition) t.integer('log_partition').notNullable();
    t.text('body', 'mediumtext').notNullable();
    t.bigInteger('create_time').notNullable();
    t.integer('sender').unsigned().nullable();
    // Log time of the first delivery; the row goes once no delivery refers to its id.
    t.bigInteger('ts').notNullable();
    if (perPartition) {
      t.primary(['log_partition', 'event_id']);
      // The API looks an id up on any partition before it publishes one again.
      t.index(['event_id'], 'events_partition_id');
    } else t.primary(['event_id']);
    // Index names are per database in SQLite: the two layouts' must differ.
    t.index(['ts'], perPartition ? 'events_partition_ts' : 'events_ts');
    if (isMysql(knex)) t.engine('InnoDB');
  });
}

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('user_states', (t) => {
    t.integer('log_partition').nullable();
  });
  await fillUserPartitions(knex);

  await knex.schema.renameTable('events', 'events_by_id');
  await eventsTable(knex, 'events', true);
  // A copy of each event for every partition whose users hold a delivery of it.
  await knex.raw(`
    INSERT INTO events (event_id, log_partition, body, create_time, sender, ts)
    SELECT e.event_id, p.log_partition, e.body, e.create_time, e.sender, e.ts
      FROM events_by_id e
      JOIN (SELECT DISTINCT ue.event_id, us.log_partition
              FROM user_events ue JOIN user_states us ON us.uid = ue.uid) p
        ON p.event_id = e.event_id`);
  await knex.schema.dropTable('events_by_id');

  // Publishes whose id was already delivered on the partition with other content. The first
  // content stays; these say so to `?wait=true`, the publish result and the dead-letter topic.
  await knex.schema.createTable('publish_conflicts', (t) => {
    t.string('topic', 249).notNullable();
    t.integer('log_partition').notNullable();
    t.bigInteger('log_offset').notNullable();
    t.string('event_id', 128).notNullable().collate('utf8mb4_bin');
    t.text('reason').notNullable();
    t.bigInteger('created_at').notNullable().index('publish_conflicts_created');
    t.primary(['topic', 'log_partition', 'log_offset']);
    t.index(['event_id'], 'publish_conflicts_event');
    if (isMysql(knex)) t.engine('InnoDB');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('publish_conflicts');
  await knex.schema.renameTable('events', 'events_per_partition');
  await eventsTable(knex, 'events', false);
  // One copy per id again: the lowest partition's.
  await knex.raw(`
    INSERT INTO events (event_id, body, create_time, sender, ts)
    SELECT e.event_id, e.body, e.create_time, e.sender, e.ts
      FROM events_per_partition e
      JOIN (SELECT event_id, MIN(log_partition) AS log_partition
              FROM events_per_partition GROUP BY event_id) first
        ON first.event_id = e.event_id AND first.log_partition = e.log_partition`);
  await knex.schema.dropTable('events_per_partition');
  await knex.schema.alterTable('user_states', (t) => {
    t.dropColumn('log_partition');
  });
}
