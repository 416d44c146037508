/**
 * The gateway's HTTP API, OpenAI-compatible: `POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models`,
 * plus `/livez` and `/readyz`. Every error is in OpenAI's format, so the application's SDK raises its usual typed
 * errors. One structured log line per request: ids, model, provider, attempts, timings, tokens and a hash of the
 * prompt, never the prompt or a key.
 */
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Logger } from '../log.js';
import type { BudgetGate } from './budget-gate.js';
import { clientError, handleChat, validChatRequest, type JsonAnswer } from './chat.js';
import { Coalescer } from './coalesce.js';
import { openAIError, POLICIES, type UpstreamError } from './errors.js';
import { HttpError } from './http-error.js';
import type { GatewayMetrics } from './metrics.js';
import { refusalReason } from './refusal.js';
import type { Runtime } from './runtime.js';
import type { EmbeddingsRequest } from './types.js';

export interface ServerOptions {
  runtime: Runtime;
  metrics: GatewayMetrics;
  log: Logger;
  /** Request bodies above this are refused with 413 before they are read. */
  maxBodyBytes: number;
  /** Log prompts in clear text: for debugging only, never in production. */
  logPrompts?: boolean;
  /** True once shutdown began: readiness fails so Kubernetes stops routing here while streams finish. */
  draining?: () => boolean;
  /** Budgets to admit requests against; none when neither the environment nor any client has one. */
  budgets?: BudgetGate;
}

function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  response.end(text);
}

/**
 * A request refused before any provider was asked (no credentials, an unknown model, a body over a cap, a gateway not
 * ready...) has no other trace: count it and log it, so that a misconfigured client shows up on a dashboard.
 */
function recordRefusal(options: Pick<ServerOptions, 'metrics' | 'log'>, error: HttpError, context: { requestId: string; method: string | undefined; path: string; client?: string }): void {
  const reason = refusalReason(error);
  options.metrics.refused.inc({ reason });
  options.log(error.status >= 500 ? 'warn' : 'info', 'request refused', { ...context, status: error.status, code: error.code, reason, error: error.message });
}

function sendError(response: ServerResponse, error: HttpError, requestId: string): void {
  if (response.headersSent) {
    response.end();
    return;
  }
  sendJson(response, error.status, openAIError(error.message, error.type, error.code, error.param), { 'x-request-id': requestId, ...error.headers });
}

async function readBody(request: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > limit) throw new HttpError(413, `request body of ${declared} bytes is over this gateway's limit of ${limit} bytes`, 'invalid_request_error', 'request_too_large');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, `request body is over this gateway's limit of ${limit} bytes`, 'invalid_request_error', 'request_too_large');
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (error) {
    throw new HttpError(400, `request body is not valid JSON: ${(error as Error).message}`);
  }
}

export function createGatewayServer(options: ServerOptions): http.Server {
  const { runtime, metrics, log } = options;
  const coalescer = new Coalescer<JsonAnswer>();
  const unpricedWarned = new Set<string>();

  const handleEmbeddings = async (request: IncomingMessage, response: ServerResponse, requestId: string) => {
    const body = (await readBody(request, options.maxBodyBytes)) as EmbeddingsRequest;
    if (!body || typeof body.model !== 'string') throw new HttpError(400, 'you must provide a model parameter', 'invalid_request_error', null, 'model');
    const { config, deps } = runtime.current();
    const model = config.models.find((m) => m.name === body.model);
    if (!model) throw new HttpError(404, `model "${body.model}" does not exist on this gateway; available: ${config.models.map((m) => m.name).join(', ')}`, 'invalid_request_error', 'model_not_found', 'model');
    let last: UpstreamError | undefined;
    for (const step of model.fallback) {
      const provider = config.providers.find((p) => p.name === step.provider);
      if (!provider) continue;
      const adapter = deps.adapter(provider);
      if (!adapter.embeddingsRequest) continue;
      const target = { provider, model: step.model, key: deps.keys.keys(provider.name)[0] };
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), model.timeouts.totalSeconds * 1000);
      try {
        const upstream = await deps.transport(provider).send(adapter.embeddingsRequest({ ...body, model: step.model }, target), controller.signal);
        const text = await upstream.text();
        if (upstream.status >= 200 && upstream.status < 300) {
          sendJson(response, 200, { ...JSON.parse(text), model: step.model }, { 'x-request-id': requestId, 'x-llmroute-provider': provider.name });
          return;
        }
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // The adapter classifies raw text too.
        }
        last = adapter.classify(upstream.status, upstream.headers, parsed, target);
        if (!POLICIES[last.class].failover) break;
      } catch (error) {
        last = { class: controller.signal.aborted ? 'timeout' : 'connection_reset', provider: provider.name, message: (error as Error).message };
      } finally {
        clearTimeout(timer);
      }
    }
    if (!last) throw new HttpError(400, `no provider of model "${model.name}" offers embeddings`);
    log('warn', 'request', { requestId, route: 'embeddings', model: model.name, outcome: 'error', errorClass: last.class, error: last.message });
    throw clientError(last).alreadyAccounted();
  };

  return http.createServer((request, response) => {
    const requestId = `chatcmpl-${randomUUID().replaceAll('-', '').slice(0, 24)}`;
    const path = (request.url ?? '/').split('?')[0] ?? '/';
    const controller = new AbortController();
    // The client went away: stop the upstream work and free the provider's connection.
    response.on('close', () => {
      if (!response.writableFinished) controller.abort();
    });
    const problems = runtime.problems();
    let client: string | undefined;
    void (async () => {
      try {
        if (path === '/livez') return void response.writeHead(200).end('ok\n');
        if (path === '/readyz') {
          if (options.draining?.()) return void response.writeHead(503, { 'content-type': 'text/plain' }).end('not ready: draining for shutdown\n');
          if (problems.length) return void response.writeHead(503, { 'content-type': 'text/plain' }).end(`not ready:\n${problems.join('\n')}\n`);
          return void response.writeHead(200).end('ok\n');
        }
        const auth = runtime.clients.authenticate(runtime.current().config.auth, request.headers.authorization);
        if (auth.ok) client = auth.client;
        if (path === '/v1/models' && request.method === 'GET') {
          if (!auth.ok) throw new HttpError(401, auth.message, 'invalid_request_error', 'invalid_api_key');
          return void sendJson(response, 200, { object: 'list', data: runtime.current().config.models.map((m) => ({ id: m.name, object: 'model', created: 0, owned_by: 'llmroute' })) });
        }
        const known = path === '/v1/chat/completions' || path === '/v1/embeddings';
        if (!known) throw new HttpError(404, `no route for ${request.method} ${path}; this gateway serves POST /v1/chat/completions, POST /v1/embeddings and GET /v1/models`, 'invalid_request_error', 'unknown_url');
        if (request.method !== 'POST') throw new HttpError(405, `${path} takes POST`, 'invalid_request_error', 'method_not_allowed');
        if (!auth.ok) throw new HttpError(401, auth.message, 'invalid_request_error', 'invalid_api_key');
        if (problems.length) throw new HttpError(503, `the gateway is not ready: ${problems.join('; ')}`, 'server_error', 'gateway_not_ready');
        if (path === '/v1/chat/completions') {
          const body = validChatRequest(await readBody(request, options.maxBodyBytes));
          await handleChat({ snapshot: runtime.current(), metrics, log, coalescer, budgets: options.budgets, logPrompts: options.logPrompts === true, unpricedWarned, clientLimiter: runtime.clientLimiter(auth.client) }, body, request, response, requestId, auth.client, controller.signal);
        }
        else await handleEmbeddings(request, response, requestId);
      } catch (error) {
        if (error instanceof HttpError) {
          if (!error.accounted) recordRefusal(options, error, { requestId, method: request.method, path, ...(client ? { client } : {}) });
          sendError(response, error, requestId);
        }
        else {
          log('error', 'unexpected error handling a request', { requestId, error: (error as Error).stack ?? String(error) });
          sendError(response, new HttpError(500, 'internal gateway error; see the gateway logs for request id ' + requestId, 'server_error'), requestId);
        }
      }
    })();
  });
}
