/**
 * The transport against a real HTTP server: reading stops at `[DONE]`, and what happens to the connection then.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from '@jest/globals';
import { HttpTransport } from '../../src/gateway/transport.js';

const EVENTS = Array.from({ length: 5 }, (_, i) => `data: {"i":${i}}\n\n`).join('');

/** How the body ends after `[DONE]`: at once, a little later (another packet), or never. */
type Ending = 'at-once' | 'soon' | 'never';

async function serve(ending: Ending): Promise<{ server: Server; url: string; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.write(EVENTS);
      if (ending === 'at-once') return void response.end('data: [DONE]\n\n');
      response.write('data: [DONE]\n\n');
      if (ending === 'soon') setTimeout(() => response.end(), 20);
    });
  });
  server.on('connection', (socket: Socket) => sockets.push(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, sockets };
}

/** Reads events until `[DONE]`, leaves the loop there and discards the rest, as an attempt does. */
async function readUntilDone(transport: HttpTransport, url: string): Promise<string> {
  const response = await transport.send({ url: `${url}/v1/chat/completions`, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }, new AbortController().signal);
  let text = '';
  for await (const bytes of response.body) {
    text += Buffer.from(bytes).toString();
    if (text.includes('[DONE]')) break;
  }
  response.discard();
  return text;
}

describe('HttpTransport', () => {
  let cleanup: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await cleanup?.();
    cleanup = undefined;
  });

  it.each<Ending>(['at-once', 'soon'])('keeps the connection for the next request when reading stops at [DONE] (body ends %s)', async (ending) => {
    const { server, url, sockets } = await serve(ending);
    const transport = new HttpTransport({ connections: 4 });
    cleanup = async () => {
      await transport.close();
      server.close();
    };
    for (let i = 0; i < 20; i++) expect(await readUntilDone(transport, url)).toContain('[DONE]');
    // The pool opens another connection while one's last bytes are read (up to its size), but never one per request.
    expect(sockets.length).toBeLessThanOrEqual(4);
  });

  it('drops a connection whose body stays open after [DONE], without delaying the answer', async () => {
    const { server, url, sockets } = await serve('never');
    const transport = new HttpTransport({ connections: 4 });
    cleanup = async () => {
      await transport.close();
      server.closeAllConnections();
      server.close();
    };
    // The answer is complete at [DONE] even though the body never ends.
    expect(await readUntilDone(transport, url)).toContain('[DONE]');
    expect(sockets).toHaveLength(1);
    const socket = sockets[0] as Socket;
    // Closed by the gateway's side after the grace period (the server never ends the body).
    if (!socket.destroyed) await once(socket, 'close');
  });
});
