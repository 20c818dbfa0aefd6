import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll } from '../helpers/processes.js';
import { API_KEY } from '../helpers/stack.js';
import {
  Deployment,
  FollowingClient,
  LoadGenerator,
  PrivateServices,
  checkDeployment,
  newLedger,
  waitProjected,
  type Ledger,
} from './harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);

/** Figures of the last run, printed for docs/reliability.md. */
const figures: Array<Record<string, unknown>> = [];

async function settle(deployment: Deployment, ledger: Ledger, fault: string, faults: number) {
  await waitProjected(deployment);
  const result = await checkDeployment(deployment.db, ledger);
  const verify = await deployment.verify();
  figures.push({
    fault,
    faults,
    accepted: ledger.accepted.size,
    unknown: ledger.unknown.size,
    deliveries: result.deliveries,
    violations: result.violations.length + verify.report.violations.length,
  });
  expect(result.violations).toEqual([]);
  expect(verify).toMatchObject({ code: 0, report: { ok: true } });
  return result;
}

describe('fault injection against a private Kafka + MariaDB', () => {
  const services = new PrivateServices();
  let deployment: Deployment | null = null;

  beforeAll(async () => {
    await services.up();
  }, 240_000);

  afterAll(async () => {
    await deployment?.destroy().catch(() => undefined);
    await killAll();
    await services.down();
    process.stdout.write(`fault figures: ${JSON.stringify(figures)}\n`);
  }, 120_000);

  async function fresh(overrides: Parameters<typeof Deployment.create>[1] = {}) {
    await deployment?.destroy().catch(() => undefined);
    deployment = await Deployment.create(services, overrides);
    return deployment;
  }

  it('should survive the projector being SIGKILLed mid-batch, repeatedly, under steady load', async () => {
    const d = await fresh();
    const api = await d.spawn(['api']);
    let projector = await d.spawn(['projector']);
    const load = new LoadGenerator(() => [api.url!], newLedger(), {
      uids: range(1, 40),
      readers: [1, 2, 3],
      ratePerSecond: 150,
      prefix: 'kill',
    });
    load.start();
    for (let round = 0; round < 4; round++) {
      await sleep(1500 + round * 300);
      expect(await projector.kill('SIGKILL')).toMatchObject({ signal: 'SIGKILL' });
      await sleep(200);
      projector = await d.spawn(['projector']);
    }
    await sleep(1500);
    await load.stop();
    expect(load.ledger.accepted.size).toBeGreaterThan(300);
    await settle(d, load.ledger, 'projector SIGKILL', 4);
  }, 180_000);

  it('should lose nothing accepted when the Kafka broker stops and comes back', async () => {
    const d = await fresh();
    const apis = [await d.spawn(['api']), await d.spawn(['api'])];
    const projector = await d.spawn(['projector']);
    const load = new LoadGenerator(() => apis.map((a) => a.url!), newLedger(), {
      uids: range(100, 30),
      readers: [100, 101],
      ratePerSecond: 100,
      prefix: 'broker',
    });
    load.start();
    await sleep(2000);
    const before = load.ledger.accepted.size;
    await services.kafkaDown();
    await sleep(4000);
    await services.kafkaUp();
    await sleep(8000);
    await load.stop();
    expect(load.ledger.accepted.size).toBeGreaterThan(before);
    await settle(d, load.ledger, 'Kafka broker stop/start', 1);
    expect(projector.child.exitCode).toBeNull();
  }, 240_000);

  it('should retry without duplicates while MariaDB is down, and catch up when it returns', async () => {
    const d = await fresh();
    const api = await d.spawn(['api']);
    const projector = await d.spawn(['projector']);
    const load = new LoadGenerator(() => [api.url!], newLedger(), {
      uids: range(200, 30),
      readers: [200, 201],
      ratePerSecond: 100,
      prefix: 'db',
    });
    load.start();
    await sleep(2000);
    await services.mariadbDown();
    await sleep(5000);
    const duringOutage = load.ledger.accepted.size;
    await services.mariadbUp();
    await sleep(5000);
    await load.stop();
    // Publishing only needs Kafka, so commands kept being accepted while the store was down.
    expect(duringOutage).toBeGreaterThan(200);
    await settle(d, load.ledger, 'MariaDB stop/start', 1);
    // The projector retried with backoff instead of crashing.
    expect(projector.child.exitCode).toBeNull();
    expect(projector.logs.some((l) => l.msg === 'projection batch failed; retrying')).toBe(true);
  }, 240_000);

  it('should let clients of a killed hub reconnect to another and catch up with no gap', async () => {
    const d = await fresh({ hubHeartbeatMs: 200, hubTimeoutMs: 1500 });
    const hubA = await d.spawn(['api', 'hub']);
    const hubB = await d.spawn(['api', 'hub']);
    await d.spawn(['projector']);
    const hubs = [hubA, hubB];
    const uids = range(300, 20);
    const clients = await Promise.all(uids.map((uid) => FollowingClient.start(uid, hubs)));
    const load = new LoadGenerator(() => [hubB.url!], newLedger(), {
      uids,
      readers: [],
      ratePerSecond: 120,
      prefix: 'hub',
    });
    load.start();
    await sleep(2000);
    await hubA.kill('SIGKILL');
    await sleep(4000);
    await load.stop();
    await waitProjected(d);
    for (const client of clients) await client.catchUp();
    await settle(d, load.ledger, 'hub SIGKILL with live sessions', 1);
    for (const client of clients) {
      const stats = await fetch(`${hubB.url}/v1/users/${client.uid}/stats`, {
        headers: { authorization: `Bearer ${API_KEY}` },
      });
      const { headSeq } = (await stats.json()) as { headSeq: number };
      expect(client.seqs).toEqual(range(1, headSeq));
      expect(client.reconnects).toBeGreaterThanOrEqual(1);
    }
    await Promise.all(clients.map((c) => c.close()));
  }, 180_000);

  it('should lose nothing on graceful shutdown (SIGTERM) under load', async () => {
    const d = await fresh();
    let apis = [await d.spawn(['api', 'hub']), await d.spawn(['api', 'hub'])];
    let projector = await d.spawn(['projector']);
    const load = new LoadGenerator(() => apis.map((a) => a.url!), newLedger(), {
      uids: range(400, 30),
      readers: [400],
      ratePerSecond: 120,
      prefix: 'term',
    });
    load.start();
    await sleep(2000);
    const stopping = apis[0]!;
    apis = [apis[1]!];
    expect(await stopping.kill('SIGTERM'), stopping.problems()).toEqual({ code: 0, signal: null });
    await sleep(1000);
    expect(await projector.kill('SIGTERM'), projector.problems()).toEqual({
      code: 0,
      signal: null,
    });
    await sleep(1000);
    projector = await d.spawn(['projector']);
    apis.push(await d.spawn(['api', 'hub']));
    await sleep(2000);
    await load.stop();
    await settle(d, load.ledger, 'SIGTERM of an API/hub and of the projector', 2);
    void projector;
  }, 180_000);
});
