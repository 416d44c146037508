/**
 * The benchmark's upstream: a fast fake OpenAI provider in its own process, so that it never competes with the
 * target under test for one event loop. Every answer is precomputed; the fake only reads the request body and checks
 * whether it asks for a stream.
 *
 * Routes (any prefix, so that providers can be told apart by base URL):
 * - `POST …/chat/completions`: a fixed, realistic chat completion (non-streaming), or with `"stream": true` an SSE
 *   stream of `STREAM_CHUNKS` content chunks, each carrying the wall-clock time it was written (`[<ms since epoch>]`)
 *   so that the client can measure the one-way delay of each chunk through a target. The chunks are written at once,
 *   unless the request's `user` is `PACED_USER`: then they come `STREAM_GAP_MS` apart, as tokens do. (A gateway may
 *   ask for a stream when its client did not, as llmroute does; that stream must cost no more time than the JSON
 *   answer the other targets get, so only the benchmark's own streaming requests are paced.)
 * - `POST /fail/…`: 503 with OpenAI's `overloaded` error body, for the fallback path;
 * - `GET …/models`: the model list, for readiness probes.
 *
 * Prints `{"url": "http://127.0.0.1:PORT"}` on stdout once listening; stops on SIGTERM.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { MODEL, PACED_USER, STREAM_CHUNKS, STREAM_GAP_MS } from '../lib/shared.js';

const CREATED = 1_730_000_000;

const now = () => performance.timeOrigin + performance.now();

const TEXT =
  'A load balancer spreads incoming requests across several servers so that no single one is overwhelmed, and it stops sending traffic to any server that fails its health checks.';

const COMPLETION = Buffer.from(
  JSON.stringify({
    id: 'chatcmpl-AbCdEfGhIjKlMnOpQrStUvWxYz012',
    object: 'chat.completion',
    created: CREATED,
    model: MODEL,
    choices: [{ index: 0, message: { role: 'assistant', content: TEXT, refusal: null, annotations: [] }, logprobs: null, finish_reason: 'stop' }],
    usage: {
      prompt_tokens: 28,
      completion_tokens: 36,
      total_tokens: 64,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
    },
    service_tier: 'default',
    system_fingerprint: 'fp_50cad350e4',
  }),
);

const OVERLOADED = Buffer.from(JSON.stringify({ error: { message: 'The server is overloaded or not ready yet.', type: 'server_error', param: null, code: null } }));
const MODELS = Buffer.from(JSON.stringify({ object: 'list', data: [{ id: MODEL, object: 'model', created: CREATED, owned_by: 'system' }] }));

const chunkHead = `{"id":"chatcmpl-AbCdEfGhIjKlMnOpQrStUvWxYz012","object":"chat.completion.chunk","created":${CREATED},"model":"${MODEL}","service_tier":"default","system_fingerprint":"fp_50cad350e4","choices":[`;
const ROLE_EVENT = `data: ${chunkHead}{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]}\n\n`;
const contentEvent = (text: string) => `data: ${chunkHead}{"index":0,"delta":{"content":${JSON.stringify(text)}},"logprobs":null,"finish_reason":null}]}\n\n`;
const FINISH_EVENT = `data: ${chunkHead}{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}\n\n`;
const USAGE_EVENT = `data: ${chunkHead}],"usage":{"prompt_tokens":28,"completion_tokens":${STREAM_CHUNKS},"total_tokens":${28 + STREAM_CHUNKS}}}\n\n`;
const DONE_EVENT = 'data: [DONE]\n\n';

function json(response: ServerResponse, status: number, body: Buffer): void {
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length, 'openai-processing-ms': '1', 'x-request-id': 'req_fake' });
  response.end(body);
}

function stream(response: ServerResponse, includeUsage: boolean, paced: boolean): void {
  response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-request-id': 'req_fake' });
  response.write(ROLE_EVENT);
  let sent = 0;
  const next = () => {
    if (response.destroyed) return;
    while (sent < STREAM_CHUNKS) {
      response.write(contentEvent(`[${now().toFixed(3)}] `));
      sent += 1;
      if (paced && sent < STREAM_CHUNKS) return void setTimeout(next, STREAM_GAP_MS);
    }
    response.write(FINISH_EVENT);
    if (includeUsage) response.write(USAGE_EVENT);
    response.end(DONE_EVENT);
  };
  next();
}

const PACED = new RegExp(`"user"\\s*:\\s*"${PACED_USER}"`);

function handle(request: IncomingMessage, response: ServerResponse): void {
  const url = request.url ?? '/';
  if (request.method === 'GET') {
    if (url.endsWith('/models')) return json(response, 200, MODELS);
    return void response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
  }
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    if (url.startsWith('/fail/')) return json(response, 503, OVERLOADED);
    if (!url.endsWith('/chat/completions')) return json(response, 404, Buffer.from('{"error":{"message":"not found","type":"invalid_request_error"}}'));
    const body = Buffer.concat(chunks).toString('utf8');
    if (/"stream"\s*:\s*true/.test(body)) return stream(response, /"include_usage"\s*:\s*true/.test(body), PACED.test(body));
    json(response, 200, COMPLETION);
  });
}

const server = createServer({ keepAliveTimeout: 60_000 }, handle);
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })}\n`);
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
