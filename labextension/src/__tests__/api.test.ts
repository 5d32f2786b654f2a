/**
 * The API client against a real HTTP server (node's http), through JupyterLab's own
 * ServerConnection: the URL it builds, the headers Lab adds, and the error envelope mapping.
 */
import * as http from 'http';
import type { AddressInfo } from 'net';

import { ServerConnection } from '@jupyterlab/services';

import { ApiClient, ApiError } from '../api';

interface ISeen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

let server: http.Server;
let baseUrl: string;
const seen: ISeen[] = [];
let respond: (req: ISeen, res: http.ServerResponse) => void;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', chunk => (body += chunk));
    req.on('end', () => {
      const entry = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
      seen.push(entry);
      respond(entry, res);
    });
  });
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/lab-base/`;
});

afterAll(async () => {
  await new Promise(resolve => server.close(resolve));
});

beforeEach(() => {
  seen.length = 0;
});

function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function client(): ApiClient {
  return new ApiClient(ServerConnection.makeSettings({ baseUrl, wsUrl: baseUrl.replace('http', 'ws'), token: 'secret-token', appendToken: true }));
}

test('GET under the base URL with the token, query parameters encoded, JSON parsed', async () => {
  respond = (_req, res) => json(res, 200, { items: [{ id: 'd1', name: 'iris' }], next_cursor: null });
  const page = await client().datasets({ q: 'iris & co' });
  expect(page.items[0].name).toBe('iris');
  expect(seen).toHaveLength(1);
  const url = new URL(seen[0].url, 'http://x');
  expect(url.pathname).toBe('/lab-base/aistudio/api/datasets');
  expect(url.searchParams.get('q')).toBe('iris & co');
  expect(url.searchParams.get('limit')).toBe('100');
  // nothing else: the server refuses unknown query parameters (no cache buster)
  expect(Array.from(url.searchParams.keys()).sort()).toEqual(['limit', 'q']);
  expect(seen[0].headers.authorization).toBe('token secret-token');
});

test('POST sends a JSON body', async () => {
  respond = (req, res) => json(res, 200, { id: 'j1', state: 'running', echoed: JSON.parse(req.body) });
  const job: any = await client().cancelJob('j1');
  expect(seen[0].method).toBe('POST');
  expect(seen[0].url).toBe('/lab-base/aistudio/api/jobs/j1/cancel');
  expect(seen[0].headers['content-type']).toBe('application/json');
  expect(job.echoed).toEqual({});
});

test('ids are path-encoded, never spliced raw into the URL', async () => {
  respond = (_req, res) => json(res, 200, { id: 'x' });
  await client().job('a/../b?c');
  expect(seen[0].url).toBe('/lab-base/aistudio/api/jobs/a%2F..%2Fb%3Fc');
});

test('the error envelope becomes a typed ApiError', async () => {
  respond = (_req, res) =>
    json(res, 409, { error: { code: 'conflict', message: 'The job already finished.', details: { state: 'succeeded' }, request_id: 'req-1' } });
  const error = await client().cancelJob('j1').catch(e => e);
  expect(error).toBeInstanceOf(ApiError);
  expect(error.status).toBe(409);
  expect(error.code).toBe('conflict');
  expect(error.message).toBe('The job already finished.');
  expect(error.details).toEqual({ state: 'succeeded' });
  expect(error.requestId).toBe('req-1');
  expect(error.retryable).toBe(false);
});

test('Retry-After is kept and 503 is retryable', async () => {
  respond = (_req, res) => json(res, 503, { error: { code: 'unavailable', message: 'The database is unreachable.' } }, { 'Retry-After': '7' });
  const error = await client().me().catch(e => e);
  expect(error).toBeInstanceOf(ApiError);
  expect(error.code).toBe('unavailable');
  expect(error.retryAfter).toBe(7);
  expect(error.retryable).toBe(true);
});

test('a body that is not an envelope still gives a short typed error', async () => {
  respond = (_req, res) => {
    res.writeHead(502, { 'Content-Type': 'text/html' });
    res.end('<html><body>Bad gateway</body></html>');
  };
  const error = await client().me().catch(e => e);
  expect(error).toBeInstanceOf(ApiError);
  expect(error.status).toBe(502);
  expect(error.code).toBe('unavailable');
  expect(error.message).not.toContain('<html>');
});

test('an unreachable server is a network ApiError with status 0', async () => {
  const dead = http.createServer();
  await new Promise<void>(resolve => dead.listen(0, '127.0.0.1', resolve));
  const port = (dead.address() as AddressInfo).port;
  await new Promise(resolve => dead.close(resolve));
  const api = new ApiClient(ServerConnection.makeSettings({ baseUrl: `http://127.0.0.1:${port}/` }));
  const error = await api.me().catch(e => e);
  expect(error).toBeInstanceOf(ApiError);
  expect(error.status).toBe(0);
  expect(error.code).toBe('network');
  expect(error.retryable).toBe(true);
});

test('204 resolves to undefined', async () => {
  respond = (_req, res) => {
    res.writeHead(204);
    res.end();
  };
  await expect(client().request('/anything', { method: 'DELETE' })).resolves.toBeUndefined();
});

test('a request that hangs times out', async () => {
  respond = () => {
    /* never answers */
  };
  const error: any = await client().request('/me', { timeoutMs: 200 }).catch(e => e);
  expect(error).toBeInstanceOf(ApiError);
  expect(error.code).toBe('timeout');
  server.closeAllConnections();
});
