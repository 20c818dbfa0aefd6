/**
 * WebSocket diff load: `sessions` sessions, one user each, each one diff request in flight at a
 * time after a random seq, as a client does after every nudge.
 */
import WebSocket from 'ws';
import { reply, serve, type Message } from '../lib/child.js';
import type { DiffLoadSetup } from '../lib/diff-load.js';
import { userToken } from '../lib/jwt.js';
import { percentiles } from '../lib/stats.js';

interface Setup extends DiffLoadSetup {
  readonly url: string;
  readonly sessions: number;
}

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('error', reject);
    ws.on('message', function first(data: Buffer) {
      const text = data.toString();
      if (!text.startsWith('{"type":"hello"')) return;
      ws.off('message', first);
      resolve(ws);
    });
  });
}

serve(async (message: Message) => {
  if (message.type !== 'run') throw new Error(`unknown command ${message.type}`);
  const setup = message.setup as Setup;
  const sockets = await Promise.all(
    Array.from({ length: setup.sessions }, (_, i) => {
      const uid = setup.firstUid + (i % setup.users);
      return open(`${setup.url}?token=${userToken(setup.secret, uid)}`);
    }),
  );
  const latencies: number[] = [];
  let errors = 0;
  let running = true;
  const started = performance.now();
  const loops = sockets.map(async (ws) => {
    let reqId = 0;
    while (running) {
      const id = ++reqId;
      const after = Math.floor(Math.random() * (setup.eventsPerUser - setup.pageSize));
      const sent = performance.now();
      const answer = await new Promise<string>((resolve) => {
        const onMessage = (data: Buffer) => {
          const text = data.toString();
          if (!text.includes(`"reqId":${id},`) && !text.includes(`"reqId":${id}}`)) return;
          ws.off('message', onMessage);
          resolve(text);
        };
        ws.on('message', onMessage);
        ws.send(`{"type":"diff","reqId":${id},"after":${after},"limit":${setup.pageSize}}`);
      });
      latencies.push(performance.now() - sent);
      if (!answer.startsWith('{"type":"diff"')) errors++;
    }
  });
  await new Promise((resolve) => setTimeout(resolve, setup.seconds * 1000));
  running = false;
  await Promise.all(loops);
  const seconds = (performance.now() - started) / 1000;
  for (const ws of sockets) ws.terminate();
  const p = percentiles(latencies, [50, 99]);
  reply({
    type: 'result',
    requests: latencies.length,
    perSecond: Math.round(latencies.length / seconds),
    seconds,
    latency: { p50: p.p50, p99: p.p99 },
    errors,
  });
});
