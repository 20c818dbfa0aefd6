/**
 * REST diff load: autocannon with `connections` clients, each request a random user's page of
 * events after a random seq, authenticated with that user's JWT.
 */
import autocannon from 'autocannon';
import { reply, serve, type Message } from '../lib/child.js';
import type { DiffLoadSetup } from '../lib/diff-load.js';
import { userToken } from '../lib/jwt.js';

interface Setup extends DiffLoadSetup {
  readonly url: string;
  readonly connections: number;
  /** Requests per second offered in all, instead of as many as the server answers. */
  readonly rate?: number;
}

serve(async (message: Message) => {
  if (message.type !== 'run') throw new Error(`unknown command ${message.type}`);
  const setup = message.setup as Setup;
  const tokens = Array.from({ length: setup.users }, (_, i) =>
    userToken(setup.secret, setup.firstUid + i),
  );
  let bad = 0;
  const result = await autocannon({
    url: setup.url,
    connections: setup.connections,
    pipelining: 1,
    duration: setup.seconds,
    ...(setup.rate ? { overallRate: setup.rate } : {}),
    requests: [
      {
        method: 'GET',
        setupRequest: (request) => {
          const i = Math.floor(Math.random() * setup.users);
          const after = Math.floor(Math.random() * (setup.eventsPerUser - setup.pageSize));
          return {
            ...request,
            path: `/v1/users/${setup.firstUid + i}/events?after=${after}&limit=${setup.pageSize}`,
            headers: { authorization: `Bearer ${tokens[i]}` },
          };
        },
        onResponse: (status) => {
          if (status !== 200) bad++;
        },
      },
    ],
  });
  reply({
    type: 'result',
    requests: result.requests.total,
    perSecond: result.requests.average,
    seconds: result.duration,
    latency: result.latency,
    non2xx: result.non2xx + bad,
    errors: result.errors,
    timeouts: result.timeouts,
    bytesPerSecond: result.throughput.average,
  });
});
