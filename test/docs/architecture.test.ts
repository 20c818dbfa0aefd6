import { describe, expect, it } from 'vitest';
import { SETTINGS } from '../../src/config.js';
import { topicSpecs } from '../../src/log/topics.js';
import { readDoc, tableRows } from '../helpers/markdown.js';
import { migrateLatest, openDatabase, typed } from '../../src/store/database.js';
import { tempDir } from '../helpers/services.js';
import fs from 'node:fs';
import path from 'node:path';

const doc = readDoc('architecture.md');

describe('docs/architecture.md', () => {
  it('should describe every topic with the partitions and cleanup it is created with', () => {
    const rows = tableRows(doc, 'topic');
    const specs = topicSpecs({
      topicPrefix: '<prefix>',
      partitions: 8,
      replicationFactor: 1,
      logRetentionMs: -1,
    });
    expect(rows.map((row) => row[0])).toEqual(specs.map((spec) => `\`${spec.topic}\``));
    for (const [i, spec] of specs.entries()) {
      const [, partitions, , cleanup] = rows[i]!;
      expect(partitions).toEqual(
        spec.numPartitions === 1 ? '1' : expect.stringContaining('MINIPUSH_PARTITIONS'),
      );
      for (const entry of spec.configEntries ?? []) {
        if (entry.name === 'cleanup.policy') expect(cleanup).toContain(`\`${entry.value}\``);
      }
    }
  });

  it('should list every table the migrations create', async () => {
    const dataDir = tempDir();
    const db = openDatabase({ mysqlUrl: '', dataDir });
    try {
      await migrateLatest(db);
      const tables = await typed<Array<{ name: string }>>(
        db('sqlite_master').where({ type: 'table' }).select('name'),
      );
      const ours = tables
        .map((t) => t.name)
        .filter((name) => !name.startsWith('knex_') && !name.startsWith('sqlite_'))
        .sort();
      expect(
        tableRows(doc, 'table')
          .map((row) => row[0]!.replace(/`/g, ''))
          .sort(),
      ).toEqual(ours);
    } finally {
      await db.destroy();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('should open with a map naming every folder of src/', () => {
    const mapped = tableRows(doc, 'folder / file')
      .map((row) => row[0]!)
      .join(' ');
    const folders = fs
      .readdirSync(path.resolve(import.meta.dirname, '../../src'), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);
    expect(folders.length).toBeGreaterThan(10);
    expect(folders.filter((folder) => !mapped.includes(`${folder}`))).toEqual([]);
  });

  it('should name only settings that exist', () => {
    const known = new Set(Object.values(SETTINGS).map((s) => s.env));
    for (const name of ['architecture.md', 'kafka-commands.md']) {
      const mentioned = [...readDoc(name).matchAll(/MINIPUSH_[A-Z0-9_]+/g)].map((m) => m[0]);
      expect(mentioned.length).toBeGreaterThan(0);
      expect(mentioned.filter((env) => !known.has(env))).toEqual([]);
    }
  });
});
