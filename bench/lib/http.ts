import http from 'node:http';

/** What a JSON POST answered: the status and, when asked for, the body text. */
export interface PostAnswer {
  readonly status: number;
  readonly body: string;
}

/**
 * POSTs a JSON payload over a keep-alive agent, as a business server calls an HTTP API.
 * The body is read only when `readBody` is set; otherwise it is drained unread.
 */
export function postJson(
  agent: http.Agent,
  url: string,
  headers: Readonly<Record<string, string>>,
  payload: unknown,
  readBody = false,
): Promise<PostAnswer> {
  const data = JSON.stringify(payload);
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        agent,
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'POST',
        headers: {
          ...headers,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(data),
        },
      },
      (response) => {
        let body = '';
        if (readBody) response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        else response.resume();
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      },
    );
    request.on('error', reject);
    request.end(data);
  });
}
