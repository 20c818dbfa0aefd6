import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { settingsMarkdown } from '../../src/config.js';

/** Table rows as cell lists, so Prettier's column padding does not matter. */
function cells(table: string): string[][] {
  return table
    .trim()
    .split('\n')
    .map((row) =>
      row
        .trim()
        .replace(/^\||\|$/g, '')
        .split(/(?<!\\)\|/)
        .map((cell) => cell.trim().replace(/^:?-+:?$/, '---')),
    );
}

describe('docs/configuration.md', () => {
  it('should list exactly the settings the code has, with their variables and defaults', () => {
    const text = fs.readFileSync(
      path.resolve(import.meta.dirname, '../../docs/configuration.md'),
      'utf8',
    );
    const table = /<!-- settings:start[^\n]*-->\n([\s\S]*?)\n<!-- settings:end -->/.exec(text);
    expect(table).not.toBeNull();
    expect(cells(table![1]!)).toEqual(cells(settingsMarkdown()));
  });
});
