import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';

/**
 * The read model's identity (`minipush_meta` row `epoch`): made with the tables, and made anew
 * by every rebuild. Read caches compare it on every read and forget everything when it changes,
 * so a rebuilt or re-created database is never served from what a process held before.
 */
export async function up(knex: Knex): Promise<void> {
  await knex('minipush_meta')
    .insert({ name: 'epoch', value: randomBytes(6).toString('base64url') })
    .onConflict('name')
    .ignore();
}

export async function down(knex: Knex): Promise<void> {
  await knex('minipush_meta').where({ name: 'epoch' }).delete();
}
