import type { Benchmark, Outcome } from './lib/context.js';
import { LoadProcess } from './lib/child.js';
import { rssBytes, settledRss } from './lib/cpu.js';
import {
  JWT_SECRET,
  kafkaDeployment,
  scrapeMetric,
  spawnServer,
  type ServerProcess,
} from './lib/deployment.js';
import { atLeast, atMost, info, type Row } from './lib/result.js';
import { sleep, until } from './lib/stats.js';

const PER_HUB = 19_000;

/** Each client process stays under the box's 20,000 open files; each source address under ~28k ports. */
function clientSetup(url: string, firstUid: number, addresses: string[]) {
  return {
    type: 'setup',
    setup: {
      secret: JWT_SECRET,
      targets: [{ url, count: PER_HUB, firstUid, sessionsPerUid: 1, localAddresses: addresses }],
      connectConcurrency: 200,
    },
  };
}

export const sessions: Benchmark = {
  name: 'sessions',
  description: 'idle authenticated sessions per hub process and memory per session; three hubs',
  async run(ctx): Promise<Outcome> {
    const services = await ctx.services();
    const deployment = await kafkaDeployment(services, { partitions: 8 });
    const hubs: ServerProcess[] = [];
    const clients: LoadProcess[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        hubs.push(await spawnServer(deployment.env(['hub']), { label: `hub ${i}` }));
      }
      await sleep(3000);
      const baseline = hubs.map((hub) => rssBytes(hub.pid));
      const wsUrl = (hub: ServerProcess) => `${hub.url!.replace(/^http/, 'ws')}/v1/ws`;
      const connectHub = async (i: number) => {
        const client = new LoadProcess('ws-clients');
        clients.push(client);
        const addresses = [`127.0.0.${2 + 2 * i}`, `127.0.0.${3 + 2 * i}`];
        await client.ask(clientSetup(wsUrl(hubs[i]!), 1 + i * PER_HUB, addresses), 'ready');
        const connected = await client.ask<{
          type: string;
          opened: number;
          failed: number;
          seconds: number;
          errors: string[];
        }>({ type: 'connect' }, 'connected', 600_000);
        ctx.log(
          `hub ${i}: ${connected.opened} sessions in ${connected.seconds.toFixed(1)} s (${connected.failed} failed ${connected.errors.join('; ')})`,
        );
        return connected;
      };

      // One hub alone first: its memory per session without the others' traffic.
      const first = await connectHub(0);
      const alone = await settledRss(hubs[0]!.pid);
      const perSession = (alone - baseline[0]!) / first.opened;
      const heap = await scrapeMetric(hubs[0]!.url!, 'nodejs_heap_size_used_bytes');

      const others = await Promise.all([connectHub(1), connectHub(2)]);
      await until(async () => {
        const counts = await Promise.all(
          hubs.map((h) => scrapeMetric(h.url!, 'minipush_sessions')),
        );
        return (
          counts.reduce((a, b) => a + b, 0) >= first.opened + others[0].opened + others[1].opened
        );
      }, 30_000);
      const counts = await Promise.all(hubs.map((h) => scrapeMetric(h.url!, 'minipush_sessions')));
      const rssAll = await Promise.all(hubs.map((h) => settledRss(h.pid)));
      const perSessionAll = rssAll.map((rss, i) => (rss - baseline[i]!) / Math.max(1, counts[i]!));
      const live = await Promise.all(
        clients.map((c) =>
          c.ask<{ type: string; sessions: number; closedUnexpectedly: number }>(
            { type: 'count' },
            'counts',
          ),
        ),
      );
      const total = counts.reduce((a, b) => a + b, 0);
      const conditions = `kafka+mariadb session bus, hub processes with a 20,000 open-file limit, clients from 3 processes × 2 loopback addresses`;
      const rows: Row[] = [
        {
          metric: 'sessions on one hub process',
          value: counts[0]!,
          unit: '',
          ...atLeast(counts[0]!, 19_000),
          conditions: `${conditions}; ${first.failed} refused`,
        },
        {
          metric: 'memory per session (RSS delta ÷ sessions), one hub',
          value: perSession / 1024,
          unit: 'KiB',
          ...atMost(perSession / 1024, 8),
          conditions: `RSS ${Math.round(baseline[0]! / 2 ** 20)} → ${Math.round(alone / 2 ** 20)} MiB; V8 heap used ${Math.round(heap / 2 ** 20)} MiB`,
        },
        {
          metric: 'sessions across three hub processes',
          value: total,
          unit: '',
          ...atLeast(total, 50_000),
          conditions: `${counts.map((c) => c.toLocaleString('en-US')).join(' + ')}`,
        },
        {
          metric: 'memory per session with three hubs, worst hub',
          value: Math.max(...perSessionAll) / 1024,
          unit: 'KiB',
          ...info(),
          conditions: 'each hub also hears the others’ session records',
        },
      ];
      return {
        rows,
        details: {
          baseline,
          alone,
          perSession,
          heap,
          counts,
          rssAll,
          perSessionAll,
          first,
          others,
          live,
        },
      };
    } finally {
      for (const client of clients) {
        await client.ask({ type: 'close' }, 'closed', 60_000).catch(() => undefined);
        await client.stop();
      }
      for (const hub of hubs) await hub.stop();
      await deployment.destroy();
    }
  },
};
