import type { Knex } from 'knex';

/**
 * The read model. Only projectors (and the TTL cleaner) write these tables; dropping them and
 * replaying the commands log rebuilds identical rows.
 */
export async function up(knex: Knex): Promise<void> {
  const mysql = (knex.client as { config: { client: unknown } }).config.client === 'mysql2';

  // One row per published event id: the body is stored once however many recipients it has.
  await knex.schema.createTable('events', (t) => {
    t.string('event_id', 128).notNullable().primary().collate('utf8mb4_bin');
    t.text('body', 'mediumtext').notNullable();
    t.bigInteger('create_time').notNullable();
    t.integer('sender').unsigned().nullable();
    // Log time of the newest delivery; the row goes only when every delivery has expired.
    t.bigInteger('ts').notNullable().index('events_ts');
    if (mysql) t.engine('InnoDB');
  });

  // One row per delivery: (uid, seq) is the feed, (event_id, uid) dedupes re-sent events.
  await knex.schema.createTable('user_events', (t) => {
    t.integer('uid').unsigned().notNullable();
    t.integer('seq').unsigned().notNullable();
    t.string('event_id', 128).notNullable().collate('utf8mb4_bin');
    // Monotonic per user, so expiry by ts always removes a prefix of the feed.
    t.bigInteger('ts').notNullable();
    t.primary(['uid', 'seq']);
    t.unique(['event_id', 'uid'], { indexName: 'user_events_event_uid' });
    // (ts, uid, seq) lets the cleaner take whole per-user prefixes in one ordered scan.
    t.index(['ts', 'uid', 'seq'], 'user_events_ts');
    if (mysql) t.engine('InnoDB');
  });

  await knex.schema.createTable('user_states', (t) => {
    t.integer('uid').unsigned().notNullable().primary();
    t.integer('head_seq').unsigned().notNullable().defaultTo(0);
    t.integer('floor_seq').unsigned().notNullable().defaultTo(1);
    t.bigInteger('last_ts').notNullable().defaultTo(0);
    // Portable roaring bitmap of read seqs; null means nothing read.
    if (mysql) t.specificType('read_bitmap', 'mediumblob').nullable();
    else t.binary('read_bitmap').nullable();
    t.bigInteger('read_version').notNullable().defaultTo(0);
    if (mysql) t.engine('InnoDB');
  });

  // Next offset to apply per log partition, written in the same transaction as the rows.
  await knex.schema.createTable('projector_offsets', (t) => {
    t.string('topic', 249).notNullable();
    t.integer('log_partition').notNullable();
    t.bigInteger('next_offset').notNullable();
    // Records below next_offset but at or above notified_offset still owe a head notification.
    t.bigInteger('notified_offset').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.primary(['topic', 'log_partition']);
    if (mysql) t.engine('InnoDB');
  });

  // Highest source offset applied per (destination, source) partition for re-routed records,
  // so a record forwarded twice (projector killed after forwarding) applies once.
  await knex.schema.createTable('projector_forwards', (t) => {
    t.string('topic', 249).notNullable();
    t.integer('log_partition').notNullable();
    t.integer('source_partition').notNullable();
    t.bigInteger('source_offset').notNullable();
    t.primary(['topic', 'log_partition', 'source_partition']);
    if (mysql) t.engine('InnoDB');
  });

  // Outcome of each read-mark command (bits changed), for `?wait=true` answers; kept briefly.
  await knex.schema.createTable('command_results', (t) => {
    t.string('topic', 249).notNullable();
    t.integer('log_partition').notNullable();
    t.bigInteger('log_offset').notNullable();
    t.integer('changed').notNullable();
    t.bigInteger('created_at').notNullable().index('command_results_created');
    t.primary(['topic', 'log_partition', 'log_offset']);
    if (mysql) t.engine('InnoDB');
  });

  await knex.schema.createTable('minipush_meta', (t) => {
    t.string('name', 64).notNullable().primary();
    t.text('value').notNullable();
    if (mysql) t.engine('InnoDB');
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of [
    'minipush_meta',
    'command_results',
    'projector_forwards',
    'projector_offsets',
    'user_states',
    'user_events',
    'events',
  ]) {
    await knex.schema.dropTableIfExists(table);
  }
}
