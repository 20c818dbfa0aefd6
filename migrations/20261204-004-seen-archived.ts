import type { Knex } from 'knex';

/**
 * Seen and archived states, each a roaring bitmap per user beside `read_bitmap` (null: none).
 * Mark read implies seen, so `seen_bitmap` holds only the seqs seen and not read: null for
 * every user at first, who has seen what it read (what replaying the log gives too).
 */
export async function up(knex: Knex): Promise<void> {
  const mysql = (knex.client as { config: { client: unknown } }).config.client === 'mysql2';
  await knex.schema.alterTable('user_states', (t) => {
    for (const column of ['seen_bitmap', 'archived_bitmap']) {
      if (mysql) t.specificType(column, 'mediumblob').nullable();
      else t.binary(column).nullable();
    }
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('user_states', (t) => {
    t.dropColumn('seen_bitmap');
    t.dropColumn('archived_bitmap');
  });
}
