import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import knexFactory, { type Knex } from 'knex';
import { createLogger } from '../../src/logger.js';
import { openBackend, prepareBackend } from '../../src/backend.js';
import { deploymentEnv, loadConfig, type Config } from '../../src/config.js';
import { decodeBitmap } from '../../src/domain/read-bitmap.js';
import { typed } from '../../src/store/database.js';
import { spawnMiniPush, type MiniPushProcess } from '../helpers/processes.js';
import { connect, type TestSocket } from '../helpers/ws-client.js';
import { randomName } from '../helpers/services.js';
import { API_KEY, JWT_SECRET, signUserToken } from '../helpers/stack.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');
const script = path.join(root, 'scripts', 'services.sh');

/**
 * A Kafka broker and a MariaDB of the fault suite's own (instance "faults", other ports), so
 * tests can stop and kill them without touching the services other suites use.
 */
export class PrivateServices {
  readonly kafkaBrokers = '127.0.0.1:19192';
  readonly mysqlUrl = 'mysql://minipush:minipush@127.0.0.1:13406/minipush';
  private readonly env: NodeJS.ProcessEnv;

  constructor() {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      MINIPUSH_SERVICES_INSTANCE: 'faults',
      MINIPUSH_TEST_KAFKA_PORT: '19192',
      MINIPUSH_TEST_MARIADB_PORT: '13406',
    };
    // These services are ours whatever the other suites use.
    delete env.MINIPUSH_TEST_KAFKA_BROKERS;
    delete env.MINIPUSH_TEST_MYSQL_URL;
    this.env = env;
  }

  async call(command: string): Promise<void> {
    await run(script, [command], { env: this.env, maxBuffer: 16 * 1024 * 1024 });
  }

  up = () => this.call('up');
  down = () => this.call('down');
  kafkaDown = () => this.call('kafka-down');
  kafkaUp = () => this.call('kafka-up');
  mariadbDown = () => this.call('mariadb-down');
  mariadbUp = () => this.call('mariadb-up');
}

/** Where a deployment's Kafka and MySQL are. */
export interface ServicesLocation {
  readonly kafkaBrokers: string;
  readonly mysqlUrl: string;
}

/** One deployment (fresh database, fresh topics) on the given services. */
export class Deployment {
  readonly config: Config;
  readonly db: Knex;
  readonly processes = new Set<MiniPushProcess>();

  private constructor(
    readonly services: ServicesLocation,
    readonly database: string,
    overrides: Partial<Config>,
  ) {
    const url = new URL(services.mysqlUrl);
    url.pathname = `/${database}`;
    this.config = loadConfig({
      env: {},
      overrides: {
        kafkaBrokers: [services.kafkaBrokers],
        mysqlUrl: url.toString(),
        topicPrefix: randomName('fault'),
        partitions: 4,
        apiKeys: [API_KEY],
        jwtSecret: JWT_SECRET,
        grpcPort: -1,
        httpPort: 0,
        logLevel: 'warn',
        waitTimeoutMs: 20_000,
        kafkaSessionTimeoutMs: 6000,
        ...overrides,
      },
    });
    this.db = knexFactory({
      client: 'mysql2',
      connection: this.config.mysqlUrl,
      pool: { min: 0, max: 4 },
    });
  }

  static async create(
    services: ServicesLocation,
    overrides: Partial<Config> = {},
  ): Promise<Deployment> {
    const database = randomName('fault');
    const admin = knexFactory({ client: 'mysql2', connection: services.mysqlUrl });
    try {
      await admin.raw(`CREATE DATABASE \`${database}\``);
    } finally {
      await admin.destroy();
    }
    const deployment = new Deployment(services, database, overrides);
    const backend = openBackend(deployment.config, createLogger('warn'));
    try {
      await prepareBackend(deployment.config, backend, createLogger('warn'));
    } finally {
      await backend.close();
    }
    return deployment;
  }

  env(extra: Partial<Config> = {}): Record<string, string> {
    const c = { ...this.config, ...extra };
    return deploymentEnv(c, {
      grpcPort: c.grpcPort,
      httpPort: c.httpPort,
      waitTimeoutMs: c.waitTimeoutMs,
      kafkaSessionTimeoutMs: c.kafkaSessionTimeoutMs,
      hubHeartbeatMs: c.hubHeartbeatMs,
      hubTimeoutMs: c.hubTimeoutMs,
      sessionQuota: c.sessionQuota,
      maxConnectionsPerIp: c.maxConnectionsPerIp,
      roles: c.roles,
      logLevel: 'warn',
    });
  }

  async spawn(roles: Config['roles'], extra: Partial<Config> = {}): Promise<MiniPushProcess> {
    const process = await spawnMiniPush({
      ...this.env({ ...extra, roles }),
      MINIPUSH_LOG_LEVEL: 'info',
    });
    this.processes.add(process);
    void process.exited.then(() => this.processes.delete(process));
    return process;
  }

  /** Runs `minipush verify` against this deployment. */
  async verify(): Promise<{
    code: number;
    report: { ok: boolean; violations: unknown[]; deliveries: number };
  }> {
    const bin = path.join(root, 'dist/src/cli.js');
    try {
      const { stdout } = await run(process.execPath, [bin, 'verify'], {
        env: { PATH: process.env.PATH ?? '', ...this.env() },
      });
      return { code: 0, report: JSON.parse(stdout) };
    } catch (err) {
      const failed = err as { code: number; stdout: string };
      return { code: failed.code, report: JSON.parse(failed.stdout) };
    }
  }

  async destroy(): Promise<void> {
    await Promise.all([...this.processes].map((p) => p.kill('SIGKILL')));
    await this.db.destroy();
    const admin = knexFactory({ client: 'mysql2', connection: this.services.mysqlUrl });
    try {
      await admin.raw(`DROP DATABASE IF EXISTS \`${this.database}\``);
    } catch {
      // The database may be down in a failed test; the instance is wiped with the cache anyway.
    } finally {
      await admin.destroy();
    }
  }
}

/** What a load generator knows about the commands it sent. */
export interface Ledger {
  /** Answered 200/202: must be applied exactly once per recipient. */
  readonly accepted: Map<string, number[]>;
  /** No clear answer (timeout, network error, 5xx): may or may not be applied, but at most once. */
  readonly unknown: Map<string, number[]>;
  /** Expected read seqs per uid, for uids whose every read command got a clear answer. */
  readonly reads: Map<number, Set<number>>;
  readonly uncertainReads: Set<number>;
  refused: number;
}

export function newLedger(): Ledger {
  return {
    accepted: new Map(),
    unknown: new Map(),
    reads: new Map(),
    uncertainReads: new Set(),
    refused: 0,
  };
}

async function post(
  url: string,
  body: unknown,
  auth: string,
  timeoutMs: number,
): Promise<{ status: number; body: any } | null> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: res.status, body: await res.json().catch(() => null) };
  } catch {
    return null;
  }
}

/**
 * Steady publish load over REST, spread over the given API URLs, plus per-user sequential read
 * marks with wait=true, all recorded in a ledger the checker compares with the projections.
 */
export class LoadGenerator {
  private running = false;
  private loops: Promise<void>[] = [];
  private counter = 0;

  constructor(
    private readonly urls: () => string[],
    readonly ledger: Ledger,
    private readonly options: {
      uids: number[];
      readers: number[];
      ratePerSecond: number;
      prefix: string;
    },
  ) {}

  start(): void {
    this.running = true;
    const workers = 8;
    for (let w = 0; w < workers; w++) this.loops.push(this.publishLoop(w, workers));
    for (const uid of this.options.readers) this.loops.push(this.readLoop(uid));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.loops = [];
  }

  private pickUrl(): string | null {
    const urls = this.urls();
    if (urls.length === 0) return null;
    return urls[this.counter % urls.length]!;
  }

  private async publishLoop(worker: number, workers: number): Promise<void> {
    const interval = (1000 * workers) / this.options.ratePerSecond;
    const { uids, prefix } = this.options;
    while (this.running) {
      const started = Date.now();
      const n = this.counter++;
      const id = `${prefix}-${worker}-${n}`;
      const count = 1 + (n % 3);
      const to = [
        ...new Set(Array.from({ length: count }, (_, i) => uids[(n * 7 + i * 13) % uids.length]!)),
      ];
      const url = this.pickUrl();
      if (url === null) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      const res = await post(
        `${url}/v1/events`,
        { id, to, body: { n } },
        `Bearer ${API_KEY}`,
        10_000,
      );
      if (res && (res.status === 202 || res.status === 200)) this.ledger.accepted.set(id, to);
      else if (res && res.status >= 400 && res.status < 500) this.ledger.refused++;
      else this.ledger.unknown.set(id, to);
      const wait = interval - (Date.now() - started);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  }

  private async readLoop(uid: number): Promise<void> {
    const auth = `Bearer ${await signUserToken(uid, { expiresIn: '2h' })}`;
    const expected = new Set<number>();
    this.ledger.reads.set(uid, expected);
    let step = 0;
    while (this.running) {
      await new Promise((r) => setTimeout(r, 100));
      const url = this.pickUrl();
      if (url === null) continue;
      let head = 0;
      try {
        const res = await fetch(`${url}/v1/users/${uid}/stats`, {
          headers: { authorization: auth },
          signal: AbortSignal.timeout(5000),
        });
        if (res.status !== 200) continue;
        head = ((await res.json()) as { headSeq: number }).headSeq;
      } catch {
        continue;
      }
      if (head === 0) continue;
      step++;
      const seqs = [1 + ((step * 5) % head), 1 + ((step * 11) % head)];
      const unread = step % 4 === 0;
      const res = await post(
        `${url}/v1/users/${uid}/${unread ? 'unread' : 'read'}?wait=true`,
        { seqs },
        auth,
        30_000,
      );
      if (res && res.status === 200) {
        for (const seq of seqs) {
          if (unread) expected.delete(seq);
          else expected.add(seq);
        }
      } else {
        this.ledger.uncertainReads.add(uid);
      }
    }
  }
}

export interface CheckResult {
  readonly users: number;
  readonly deliveries: number;
  readonly violations: string[];
}

/**
 * The fault suite's checker: every user's seqs are exactly 1..head with head = max seq, each
 * accepted event id appears once per recipient, no id appears twice, nothing appears that was
 * never sent, and read state equals what the acknowledged read commands imply.
 */
export async function checkDeployment(db: Knex, ledger: Ledger): Promise<CheckResult> {
  const violations: string[] = [];
  const rows = await typed<Array<{ uid: number; seq: number; event_id: string }>>(
    db('user_events')
      .orderBy([{ column: 'uid' }, { column: 'seq' }])
      .select('uid', 'seq', 'event_id'),
  );
  const states = await typed<
    Array<{ uid: number; head_seq: number; floor_seq: number; read_bitmap: Buffer | null }>
  >(db('user_states').select('uid', 'head_seq', 'floor_seq', 'read_bitmap'));
  const feeds = new Map<number, Array<{ seq: number; id: string }>>();
  for (const row of rows) {
    let feed = feeds.get(row.uid);
    if (!feed) feeds.set(row.uid, (feed = []));
    feed.push({ seq: row.seq, id: row.event_id });
  }
  for (const state of states) {
    const feed = feeds.get(state.uid) ?? [];
    const seqs = feed.map((e) => e.seq);
    const expected = Array.from({ length: state.head_seq }, (_, i) => i + 1);
    if (JSON.stringify(seqs) !== JSON.stringify(expected)) {
      violations.push(
        `uid ${state.uid}: seqs are not 1..${state.head_seq} (${seqs.length} stored)`,
      );
    }
    const ids = new Set<string>();
    for (const e of feed) {
      if (ids.has(e.id)) violations.push(`uid ${state.uid}: ${e.id} delivered twice`);
      ids.add(e.id);
    }
  }
  for (const uid of feeds.keys()) {
    if (!states.some((s) => s.uid === uid))
      violations.push(`uid ${uid}: deliveries without a user row`);
  }
  const delivered = new Set(rows.map((r) => `${r.event_id}|${r.uid}`));
  for (const [id, to] of ledger.accepted) {
    for (const uid of to)
      if (!delivered.has(`${id}|${uid}`)) violations.push(`accepted ${id} missing for uid ${uid}`);
  }
  for (const row of rows) {
    const key = row.event_id;
    if (!ledger.accepted.has(key) && !ledger.unknown.has(key))
      violations.push(`uid ${row.uid}: ${key} was never sent`);
  }
  for (const [uid, expected] of ledger.reads) {
    if (ledger.uncertainReads.has(uid)) continue;
    const state = states.find((s) => s.uid === uid);
    const actual = state ? decodeBitmap(state.read_bitmap).toArray() : [];
    const want = [...expected].sort((a, b) => a - b);
    if (JSON.stringify(actual) !== JSON.stringify(want)) {
      violations.push(
        `uid ${uid}: read seqs ${JSON.stringify(actual)} but the acknowledged commands imply ${JSON.stringify(want)}`,
      );
    }
  }
  return { users: states.length, deliveries: rows.length, violations };
}

/** Waits until every partition's projection reached the end of the log. */
export async function waitProjected(deployment: Deployment, timeoutMs = 90_000): Promise<void> {
  const backend = openBackend(deployment.config, createLogger('warn'));
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ends = await backend.log.endOffsets();
      const offsets = await typed<Array<{ log_partition: number; next_offset: number | string }>>(
        deployment
          .db('projector_offsets')
          .where({ topic: backend.log.topic })
          .select('log_partition', 'next_offset'),
      );
      const behind = ends.some(
        (end, p) =>
          end > 0 && Number(offsets.find((o) => o.log_partition === p)?.next_offset ?? 0) < end,
      );
      if (!behind) return;
      if (Date.now() > deadline)
        throw new Error(
          `projection did not catch up in ${timeoutMs} ms: ends ${JSON.stringify(ends)}, offsets ${JSON.stringify(offsets)}`,
        );
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await backend.close();
  }
}

/** A minimal client: follows its head with diffs, and reconnects to the next hub when dropped. */
export class FollowingClient {
  readonly seqs: number[] = [];
  reconnects = 0;
  private socket: TestSocket | null = null;
  private closed = false;
  private syncing: Promise<void> = Promise.resolve();

  private constructor(
    readonly uid: number,
    private readonly hubs: MiniPushProcess[],
    private readonly token: string,
  ) {}

  static async start(uid: number, hubs: MiniPushProcess[]): Promise<FollowingClient> {
    const client = new FollowingClient(uid, hubs, await signUserToken(uid, { expiresIn: '1h' }));
    await client.connect(0);
    return client;
  }

  private async connect(index: number): Promise<void> {
    // Bounded: a client that cannot get in within a minute fails the test instead of spinning.
    const deadline = Date.now() + 60_000;
    for (let attempt = 0; !this.closed; attempt++) {
      if (Date.now() > deadline)
        throw new Error(`uid ${this.uid}: no hub accepted a connection within 60 s`);
      const hub = this.hubs[(index + attempt) % this.hubs.length]!;
      if (hub.child.exitCode !== null || hub.child.signalCode !== null) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      try {
        const socket = await connect(`${hub.url!.replace('http', 'ws')}/v1/ws`, {
          token: this.token,
        });
        this.socket = socket;
        socket.ws.on('message', (data) => {
          const message = JSON.parse(Buffer.isBuffer(data) ? data.toString('utf8') : '{}') as {
            type: string;
          };
          if (message.type === 'head' || message.type === 'hello') this.sync();
        });
        void socket.closed.then(() => {
          if (this.closed) return;
          this.reconnects++;
          this.connect(index + attempt + 1).catch(() => undefined);
        });
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
      }
    }
  }

  private sync(): void {
    this.syncing = this.syncing.then(() => this.diffToEnd()).catch(() => undefined);
  }

  private async diffToEnd(): Promise<void> {
    for (;;) {
      const socket = this.socket;
      if (!socket || socket.ws.readyState !== socket.ws.OPEN) return;
      const after = this.seqs.at(-1) ?? 0;
      const page = await socket.request('diff', { after, limit: 200 });
      if (page.type !== 'diff') return;
      for (const event of page.events as Array<{ seq: number }>) {
        if (event.seq !== (this.seqs.at(-1) ?? 0) + 1)
          throw new Error(`uid ${this.uid}: gap before seq ${event.seq}`);
        this.seqs.push(event.seq);
      }
      if (!page.more) return;
    }
  }

  async catchUp(): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (!this.socket || this.socket.ws.readyState !== this.socket.ws.OPEN) {
      if (Date.now() > deadline) throw new Error(`uid ${this.uid} never reconnected`);
      await new Promise((r) => setTimeout(r, 100));
    }
    this.sync();
    await this.syncing;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.socket?.close();
  }
}
