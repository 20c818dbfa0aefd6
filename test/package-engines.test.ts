import fs from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');

/** Every package.json under node_modules, scoped and nested ones included. */
function installedPackages(dir = path.join(ROOT, 'node_modules')): string[] {
  const found: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const full = path.join(dir, entry.name);
    if (entry.name.startsWith('@')) {
      found.push(...installedPackages(full));
      continue;
    }
    const manifest = path.join(full, 'package.json');
    if (fs.existsSync(manifest)) found.push(manifest);
    const nested = path.join(full, 'node_modules');
    if (fs.existsSync(nested)) found.push(...installedPackages(nested));
  }
  return found;
}

describe('the dependency tree', () => {
  it('should run on every Node the package says it supports', () => {
    const ours = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    const supported = semver.minVersion(ours.engines.node as string)!;
    expect(supported.major).toBe(20);
    const manifests = installedPackages();
    expect(manifests.length).toBeGreaterThan(100);
    const tooNew: string[] = [];
    for (const manifest of manifests) {
      const pkg = JSON.parse(fs.readFileSync(manifest, 'utf8'));
      const wants: unknown = pkg.engines?.node;
      if (typeof wants !== 'string' || semver.validRange(wants) === null) continue;
      // The oldest Node 20 we support, and the one this box runs, must both satisfy it.
      for (const version of [supported.version, process.version]) {
        if (!semver.satisfies(version, wants, { includePrerelease: true }))
          tooNew.push(`${pkg.name}@${pkg.version} wants node ${wants} (not ${version})`);
      }
    }
    expect(tooNew).toEqual([]);
  });
});
