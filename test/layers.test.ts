import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../src');
const ROOT = path.dirname(SRC);

/** Every .ts file under src/, as a path relative to the checkout. */
function sources(dir = SRC): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sources(full);
    return entry.name.endsWith('.ts') ? [path.relative(ROOT, full)] : [];
  });
}

/** The checkout-relative targets of a file's relative imports (`import` and `export … from`). */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+'(\.[^']+)'/g)].map((m) =>
    path
      .relative(ROOT, path.resolve(path.dirname(path.join(ROOT, file)), m[1]!))
      .replace(/\.js$/, '.ts'),
  );
}

const edges = sources().flatMap((file) => importsOf(file).map((target) => ({ file, target })));
const under = (folder: string) => (p: string) => p.startsWith(`src/${folder}/`);
/** Where the layers are wired together: the only files that see all of them. */
const COMPOSITION_ROOT = ['src/app.ts', 'src/runtime.ts', 'src/cli.ts', 'src/bin.ts'];

function violations(allowed: (file: string) => boolean, target: (p: string) => boolean): string[] {
  return edges
    .filter((e) => target(e.target) && !allowed(e.file))
    .map((e) => `${e.file} → ${e.target}`);
}

describe('the layers of src/', () => {
  it('should find the imports it checks', () => {
    expect(edges.length).toBeGreaterThan(200);
    expect(edges).toContainEqual({ file: 'src/app.ts', target: 'src/hubs/hub.ts' });
  });

  it('should never import tests or benchmarks', () => {
    expect(
      edges.filter((e) => !e.target.startsWith('src/') && !e.target.startsWith('migrations/')),
    ).toEqual([]);
  });

  it('should import telemetry only from the composition root and telemetry itself', () => {
    expect(
      violations((f) => COMPOSITION_ROOT.includes(f) || under('telemetry')(f), under('telemetry')),
    ).toEqual([]);
  });

  it('should import the transports only from the composition root and the transports', () => {
    const edge = (f: string) =>
      COMPOSITION_ROOT.includes(f) || under('transports')(f) || under('demo')(f);
    expect(violations(edge, under('transports'))).toEqual([]);
  });

  it('should import the hubs only from above them: transports, telemetry and the root', () => {
    const above = (f: string) =>
      COMPOSITION_ROOT.includes(f) || ['hubs', 'transports', 'telemetry'].some((d) => under(d)(f));
    expect(violations(above, under('hubs'))).toEqual([]);
  });

  it('should keep the domain pure and the wire protocol free of server code', () => {
    const domainOut = edges.filter(
      (e) => under('domain')(e.file) && !under('domain')(e.target) && e.target !== 'src/errors.ts',
    );
    expect(domainOut).toEqual([]);
    const protocolOut = edges.filter(
      (e) => under('protocol')(e.file) && e.target !== 'src/errors.ts',
    );
    expect(protocolOut).toEqual([]);
    const clientOut = edges.filter(
      (e) => under('client')(e.file) && !under('client')(e.target) && !under('protocol')(e.target),
    );
    expect(clientOut).toEqual([]);
  });
});
