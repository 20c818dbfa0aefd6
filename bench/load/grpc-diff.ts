/**
 * gRPC diff load: `concurrency` loops, each one call in flight at a time, over a few channels,
 * each call a random user's page of events after a random seq, with that user's JWT.
 */
import * as grpc from '@grpc/grpc-js';
import { loadPackageDefinition } from '../../src/transports/grpc/server.js';
import { reply, serve, type Message } from '../lib/child.js';
import type { DiffLoadSetup } from '../lib/diff-load.js';
import { userToken } from '../lib/jwt.js';
import { percentiles } from '../lib/stats.js';

interface Setup extends DiffLoadSetup {
  readonly target: string;
  readonly concurrency: number;
  readonly channels: number;
}

type DiffClient = grpc.Client & {
  Diff(
    request: unknown,
    metadata: grpc.Metadata,
    callback: (err: grpc.ServiceError | null, response: { events: unknown[] }) => void,
  ): void;
};

serve(async (message: Message) => {
  if (message.type !== 'run') throw new Error(`unknown command ${message.type}`);
  const setup = message.setup as Setup;
  const loaded = grpc.loadPackageDefinition(loadPackageDefinition()) as unknown as {
    minipush: { v1: { QueryService: grpc.ServiceClientConstructor } };
  };
  const clients = Array.from(
    { length: setup.channels },
    (_, i) =>
      new loaded.minipush.v1.QueryService(setup.target, grpc.credentials.createInsecure(), {
        // Separate connections, as separate client processes would have.
        'grpc.use_local_subchannel_pool': 1,
        'bench.channel': i,
      }) as unknown as DiffClient,
  );
  const metadata = Array.from({ length: setup.users }, (_, i) => {
    const m = new grpc.Metadata();
    m.set('authorization', `Bearer ${userToken(setup.secret, setup.firstUid + i)}`);
    return m;
  });
  const call = (client: DiffClient, i: number, after: number) =>
    new Promise<number>((resolve, reject) => {
      client.Diff(
        { uid: setup.firstUid + i, after, limit: setup.pageSize },
        metadata[i]!,
        (err, response) => (err ? reject(err) : resolve(response.events.length)),
      );
    });
  // Warm the channels up.
  await Promise.all(clients.map((c) => call(c, 0, 0)));
  const samples: number[] = [];
  let errors = 0;
  let short = 0;
  const started = performance.now();
  const deadline = started + setup.seconds * 1000;
  await Promise.all(
    Array.from({ length: setup.concurrency }, async (_, loop) => {
      const client = clients[loop % clients.length]!;
      while (performance.now() < deadline) {
        const i = Math.floor(Math.random() * setup.users);
        const after = Math.floor(Math.random() * (setup.eventsPerUser - setup.pageSize));
        const t0 = performance.now();
        try {
          const n = await call(client, i, after);
          if (n !== setup.pageSize) short++;
          samples.push(performance.now() - t0);
        } catch {
          errors++;
          if (errors > 1000) break;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  for (const c of clients) c.close();
  reply({
    type: 'result',
    requests: samples.length,
    perSecond: samples.length / seconds,
    seconds,
    errors,
    short,
    latency: percentiles(samples, [50, 90, 99, 99.9]),
  });
});
