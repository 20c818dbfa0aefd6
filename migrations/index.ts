import type { Knex } from 'knex';
import * as initial from './20261125-001-initial.js';
import * as eventsPerPartition from './20261202-002-events-per-partition.js';
import * as readModelEpoch from './20261203-003-read-model-epoch.js';
import * as seenArchived from './20261204-004-seen-archived.js';

interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

/** Every migration in order. Listed here, not globbed, so the compiled build needs no loader. */
const MIGRATIONS: ReadonlyArray<readonly [string, Migration]> = [
  ['20261125-001-initial', initial],
  ['20261202-002-events-per-partition', eventsPerPartition],
  ['20261203-003-read-model-epoch', readModelEpoch],
  ['20261204-004-seen-archived', seenArchived],
];

export const migrationSource: Knex.MigrationSource<readonly [string, Migration]> = {
  getMigrations: () => Promise.resolve([...MIGRATIONS]),
  getMigrationName: ([name]) => name,
  getMigration: ([, migration]) => Promise.resolve(migration),
};
