import fs from 'node:fs';
import path from 'node:path';

export function readDoc(name: string): string {
  return fs.readFileSync(path.resolve(import.meta.dirname, '../../docs', name), 'utf8');
}

/** Fenced code blocks of a Markdown text with the given info string, in order. */
export function codeBlocks(markdown: string, language: string): string[] {
  const out: string[] = [];
  const fence = new RegExp('^```' + language + '\\n([\\s\\S]*?)^```$', 'gm');
  for (const match of markdown.matchAll(fence)) out.push(match[1]!);
  return out;
}

/** Rows of the Markdown table whose header row starts with `firstHeader`, as trimmed cells. */
export function tableRows(markdown: string, firstHeader: string): string[][] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => new RegExp(`^\\|\\s*${firstHeader}\\s*\\|`).test(line));
  if (start < 0) throw new Error(`no table with header ${firstHeader}`);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((cell) => cell.trim()),
    );
  }
  return rows;
}

/** The text between backticks in a table cell or sentence, e.g. the record of a row. */
export function inlineCode(text: string): string[] {
  return [...text.matchAll(/`([^`]+)`/g)].map((match) => match[1]!);
}
