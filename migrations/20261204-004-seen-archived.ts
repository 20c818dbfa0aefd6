import type { Knex } from 'knex';

/**
 * Seen and archived states, each a roaring bitmap per user beside `read_bitmap` (null: none).
 * Mark read implies seen, so every seq read before this migration is seen: the seen bitmap
 * starts as a copy of the read one, what replaying the log gives too.
 */
export async function up(knex: Knex): Promise<void> {
  const mysql = (knex.client as { config: { client: unknown } }).config.client === 'mysql2';
  await knex.schema.alterTable('user_states', (t) => {
    for (const column of ['seen_bitmap', 'archived_bitmap']) {
      if (mysql) t.specificType(column, 'mediumblob').nullable();
      else t.binary(column).nullable();
    }
  });
  await knex('user_states').update({ seen_bitmap: knex.ref('read_bitmap') });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('user_states', (t) => {
    t.dropColumn('seen_bitmap');
    t.dropColumn('archived_bitmap');
  });
}
