/**
 * The bare Node passthrough proxy: node:http in front of one keep-alive undici Pool to the fake provider, bodies
 * streamed both ways and nothing parsed. It is the practical limit of any gateway written in Node: what is left of a
 * request once every feature is taken away.
 *
 * Usage: bare-proxy.ts <upstream origin>. Prints `{"url": …}` on stdout once listening; stops on SIGTERM.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { Pool } from 'undici';

const upstream = process.argv[2];
if (!upstream) throw new Error('usage: bare-proxy.ts <upstream origin>');
const pool = new Pool(upstream, { connections: 256, keepAliveTimeout: 30_000, headersTimeout: 0, bodyTimeout: 0 });

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'te', 'trailer']);

function forwardable(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  return out;
}

const server = createServer({ keepAliveTimeout: 60_000 }, (request, response) => {
  const body = request.method === 'GET' || request.method === 'HEAD' ? null : request;
  pool
    .request({ path: request.url ?? '/', method: request.method as 'POST', headers: forwardable(request.headers), body })
    .then(async (upstreamResponse) => {
      const headers: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(upstreamResponse.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
      response.writeHead(upstreamResponse.statusCode, headers);
      await pipeline(upstreamResponse.body, response);
    })
    .catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(502, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: String(error), type: 'server_error' } }));
      else response.destroy();
    });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })}\n`);
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => void pool.close().finally(() => process.exit(0)));
});
