import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { killAll } from '../helpers/processes.js';
import { API_KEY } from '../helpers/stack.js';
import {
  Deployment,
  FollowingClient,
  LoadGenerator,
  checkDeployment,
  newLedger,
  waitProjected,
} from './harness.js';

/** Short by default so it always runs; MINIPUSH_SOAK_SECONDS and MINIPUSH_SOAK_CLIENTS make it long. */
const SECONDS = Number(process.env.MINIPUSH_SOAK_SECONDS ?? 40);
const CLIENTS = Number(process.env.MINIPUSH_SOAK_CLIENTS ?? 300);
const RATE = Number(process.env.MINIPUSH_SOAK_RATE ?? 100);

function rssKiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('soak: steady publishing to hundreds of live WebSocket clients', () => {
  // The shared services: nothing here stops them, so this can run beside other suites.
  const services = { kafkaBrokers: inject('kafkaBrokers'), mysqlUrl: inject('mysqlUrl') };
  let deployment: Deployment | null = null;

  afterAll(async () => {
    await deployment?.destroy().catch(() => undefined);
    await killAll();
  }, 120_000);

  it(
    `should end with the checker green, every client caught up, and the hub's memory flat (${SECONDS} s, ${CLIENTS} clients)`,
    async () => {
      deployment = await Deployment.create(services, { maxConnectionsPerIp: 0 });
      const hub = await deployment.spawn(['api', 'hub']);
      await deployment.spawn(['projector']);
      const uids = Array.from({ length: CLIENTS }, (_, i) => 10_000 + i);
      const clients: FollowingClient[] = [];
      for (let i = 0; i < uids.length; i += 50) {
        clients.push(
          ...(await Promise.all(
            uids.slice(i, i + 50).map((uid) => FollowingClient.start(uid, [hub])),
          )),
        );
      }
      const load = new LoadGenerator(() => [hub.url!], newLedger(), {
        uids,
        readers: uids.slice(0, 5),
        ratePerSecond: RATE,
        prefix: 'soak',
      });
      const samples: number[] = [];
      load.start();
      const started = Date.now();
      while (Date.now() - started < SECONDS * 1000) {
        await new Promise((r) => setTimeout(r, 1000));
        samples.push(rssKiB(hub.child.pid!));
      }
      await load.stop();
      await waitProjected(deployment);
      for (const client of clients) await client.catchUp();

      const result = await checkDeployment(deployment.db, load.ledger);
      expect(result.violations).toEqual([]);
      expect(load.ledger.accepted.size).toBeGreaterThan(SECONDS * RATE * 0.5);
      for (const client of clients) {
        const res = await fetch(`${hub.url}/v1/users/${client.uid}/stats`, {
          headers: { authorization: `Bearer ${API_KEY}` },
        });
        const { headSeq } = (await res.json()) as { headSeq: number };
        expect(client.seqs.length, `uid ${client.uid}`).toBe(headSeq);
        expect(client.seqs.at(-1) ?? 0).toBe(headSeq);
      }
      // After warm-up, the last third of the run uses no more memory than the middle third (+25 %).
      const third = Math.floor(samples.length / 3);
      const middle = mean(samples.slice(third, 2 * third));
      const last = mean(samples.slice(2 * third));
      process.stdout.write(
        `soak: ${load.ledger.accepted.size} events accepted, ${result.deliveries} deliveries, ${clients.length} clients, hub RSS middle ${Math.round(middle / 1024)} MiB, last ${Math.round(last / 1024)} MiB\n`,
      );
      expect(last).toBeLessThan(middle * 1.25);
      await Promise.all(clients.map((c) => c.close()));
    },
    (SECONDS + 240) * 1000,
  );
});
