import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Metrics } from '../../src/telemetry/metrics.js';
import { SPAN } from '../../src/telemetry/spans.js';

const root = path.resolve(import.meta.dirname, '../..');
const read = (file: string) => fs.readFileSync(path.join(root, file), 'utf8');

/** Names of MiniPush's own series as the registry exposes them. */
async function minipushMetrics(): Promise<Map<string, string>> {
  const metrics = await new Metrics().registry.getMetricsAsJSON();
  return new Map(
    metrics.filter((m) => m.name.startsWith('minipush_')).map((m) => [m.name, String(m.type)]),
  );
}

function seriesOf(name: string, type: string): string[] {
  return type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name];
}

describe('otel/grafana-dashboard.json', () => {
  const dashboard = JSON.parse(read('otel/grafana-dashboard.json'));
  const exprs: string[] = dashboard.panels.flatMap((p: any) => p.targets.map((t: any) => t.expr));

  it('should query only series MiniPush exposes, and every one of its metrics', async () => {
    const metrics = await minipushMetrics();
    const exposed = new Set([...metrics].flatMap(([name, type]) => seriesOf(name, type)));
    const used = new Set(exprs.flatMap((e) => e.match(/\bminipush_[a-z_]+/g) ?? []));
    expect([...used].filter((name) => !exposed.has(name))).toEqual([]);
    const covered = [...metrics].filter(([name, type]) =>
      seriesOf(name, type).some((s) => used.has(s)),
    );
    expect(covered.map(([name]) => name).sort()).toEqual([...metrics.keys()].sort());
  });

  it('should take its Prometheus data source as an import input', () => {
    expect(dashboard.__inputs).toContainEqual(
      expect.objectContaining({ name: 'DS_PROMETHEUS', pluginId: 'prometheus' }),
    );
    for (const panel of dashboard.panels)
      expect(panel.datasource).toEqual({ type: 'prometheus', uid: '${DS_PROMETHEUS}' });
  });
});

describe('otel/collector.yaml', () => {
  const config = parse(read('otel/collector.yaml'));

  it('should wire only components it defines', () => {
    for (const [name, pipeline] of Object.entries<any>(config.service.pipelines)) {
      for (const kind of ['receivers', 'processors', 'exporters'] as const) {
        for (const component of pipeline[kind] ?? [])
          expect(Object.keys(config[kind]), `${name} ${kind}`).toContain(component);
      }
    }
  });

  it('should take OTLP traces in and scrape /metrics', () => {
    expect(config.service.pipelines.traces.receivers).toEqual(['otlp']);
    expect(Object.keys(config.receivers.otlp.protocols).sort()).toEqual(['grpc', 'http']);
    const scrape = config.receivers.prometheus.config.scrape_configs[0];
    expect(scrape.metrics_path).toBe('/metrics');
    expect(config.service.pipelines.metrics.receivers).toEqual(['prometheus']);
  });
});

describe('docs/observability.md', () => {
  const doc = read('docs/observability.md');

  it('should document every metric and no other', async () => {
    const metrics = await minipushMetrics();
    const documented = new Set(doc.match(/\bminipush_[a-z_]+/g) ?? []);
    expect([...metrics.keys()].filter((name) => !documented.has(name))).toEqual([]);
    expect([...documented].filter((name) => !metrics.has(name))).toEqual([]);
  });

  it('should document every span MiniPush creates', () => {
    for (const name of Object.values(SPAN)) expect(doc).toContain(`\`${name}\``);
  });
});
