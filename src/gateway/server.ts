/**
 * The gateway's HTTP API, OpenAI-compatible: `POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models`,
 * plus `/livez` and `/readyz`. Every error is in OpenAI's format, so the application's SDK raises its usual typed
 * errors. One structured log line per request: ids, model, provider, attempts, timings, tokens and a hash of the
 * prompt, never the prompt or a key.
 */
import { createHash, randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { CompiledModel } from '../api/gateway-config.js';
import type { Logger } from '../log.js';
import { CLIENT_ERROR, openAIError, POLICIES, type UpstreamError } from './errors.js';
import type { GatewayMetrics } from './metrics.js';
import { route, type AttemptRecord, type RouteResult } from './router.js';
import type { Runtime } from './runtime.js';
import { JsonSink, StreamSink } from './sinks.js';
import { estimatePromptTokens } from './tokens.js';
import type { ChatRequest, EmbeddingsRequest } from './types.js';

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
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = 'invalid_request_error',
    readonly code: string | null = null,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  response.end(text);
}

function sendError(response: ServerResponse, error: HttpError, requestId: string, headers: Record<string, string> = {}): void {
  if (response.headersSent) {
    response.end();
    return;
  }
  sendJson(response, error.status, openAIError(error.message, error.type, error.code, error.param), { 'x-request-id': requestId, ...headers });
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

function chatRequest(body: unknown): ChatRequest {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'request body must be a JSON object');
  const request = body as ChatRequest;
  if (typeof request.model !== 'string' || !request.model) throw new HttpError(400, 'you must provide a model parameter', 'invalid_request_error', null, 'model');
  if (!Array.isArray(request.messages) || request.messages.length === 0) throw new HttpError(400, "'messages' must be a non-empty array", 'invalid_request_error', null, 'messages');
  for (const [i, message] of request.messages.entries()) {
    if (!message || typeof message !== 'object' || typeof message.role !== 'string') throw new HttpError(400, `messages[${i}] must be an object with a role`, 'invalid_request_error', null, `messages[${i}]`);
  }
  return request;
}

function attemptSummary(attempts: AttemptRecord[]) {
  return attempts.map((a) => ({ provider: a.provider, model: a.model, result: a.outcome, ms: a.durationMs }));
}

/** The status and body for a request whose every step failed, keeping the original reason. */
function clientError(error: UpstreamError): HttpError {
  const mapped = CLIENT_ERROR[error.class];
  return new HttpError(mapped.status, error.message, mapped.type, error.code ?? error.class);
}

export function createGatewayServer(options: ServerOptions): http.Server {
  const { runtime, metrics, log } = options;

  const handleChat = async (request: IncomingMessage, response: ServerResponse, requestId: string, client: string, signal: AbortSignal) => {
    const started = Date.now();
    const body = chatRequest(await readBody(request, options.maxBodyBytes));
    const { config, deps } = runtime.current();
    const model: CompiledModel | undefined = config.models.find((m) => m.name === body.model);
    if (!model) throw new HttpError(404, `model "${body.model}" does not exist on this gateway; available: ${config.models.map((m) => m.name).join(', ')}`, 'invalid_request_error', 'model_not_found', 'model');
    const promptTokens = estimatePromptTokens(body);
    if (model.maxInputTokens !== undefined && promptTokens > model.maxInputTokens) {
      throw new HttpError(400, `the prompt is about ${promptTokens} tokens, ${promptTokens - model.maxInputTokens} over model "${model.name}"'s limit of ${model.maxInputTokens}; shorten it`, 'invalid_request_error', 'context_length_exceeded', 'messages');
    }
    const stream = body.stream === true;
    // A stream's headers go out with its first content, before the route's result exists.
    let attemptsSoFar: AttemptRecord[] = [];
    let depthSoFar = 0;
    let providerSoFar = '';
    const served = (attempts: AttemptRecord[], inProgress = 0) => String(attempts.filter((a) => !a.outcome.startsWith('skipped')).length + inProgress);
    const sink = stream
      ? // The attempt whose first content commits the stream is not recorded until it ends: count it.
        new StreamSink(response, { requestId, headers: () => ({ 'x-llmroute-provider': providerSoFar, 'x-llmroute-attempts': served(attemptsSoFar, 1), 'x-llmroute-fallback-depth': String(depthSoFar) }) }, body.stream_options?.include_usage === true)
      : new JsonSink();
    const tracking = {
      ...deps,
      observer: {
        ...deps.observer,
        attempt: (record: AttemptRecord, attemptResult?: Parameters<typeof deps.observer.attempt>[1]) => {
          attemptsSoFar = [...attemptsSoFar, record];
          deps.observer.attempt(record, attemptResult);
        },
      },
    };
    const writing = {
      write: (chunk: Parameters<typeof sink.write>[0], provider: string, answered: string, depth: number) => {
        providerSoFar = provider;
        // The router's step, not the provider's first step: a provider may appear twice (with another model).
        depthSoFar = depth;
        sink.write(chunk, provider, answered);
      },
      committed: () => sink.committed(),
      reset: () => sink.reset(),
    };
    const result: RouteResult = await route(tracking, model, body, writing, signal);
    const headers = () => ({
      ...(result.outcome === 'success' ? { 'x-llmroute-provider': result.provider } : {}),
      'x-llmroute-attempts': served(result.attempts),
      'x-llmroute-fallback-depth': String(result.depth),
    });
    const outcome = result.outcome === 'success' ? 'success' : result.outcome === 'client-gone' ? 'client_gone' : result.truncated ? 'truncated' : POLICIES[result.error.class].failover || POLICIES[result.error.class].retry ? (result.error.class === 'timeout' || result.error.class === 'stream_stall' ? 'timeout' : 'error') : 'rejected';
    metrics.requests.inc({ model: model.name, client, variant: 'baseline', outcome });
    metrics.requestDuration.observe({ model: model.name, variant: 'baseline' }, (Date.now() - started) / 1000);
    if (result.outcome === 'success') {
      if (result.depth > 0) metrics.fallbacks.inc({ model: model.name, depth: String(result.depth) });
      if (result.firstTokenMs !== undefined) metrics.timeToFirstToken.observe({ model: model.name, provider: result.provider }, result.firstTokenMs / 1000);
      if (result.usage) {
        metrics.tokens.inc({ model: model.name, provider: result.provider, client, direction: 'input' }, result.usage.prompt_tokens);
        metrics.tokens.inc({ model: model.name, provider: result.provider, client, direction: 'output' }, result.usage.completion_tokens);
        metrics.promptTokens.observe({ model: model.name }, result.usage.prompt_tokens);
      }
    }
    if (stream) metrics.streams.inc({ model: model.name, ending: result.outcome === 'success' ? (result.continued ? 'continued' : 'complete') : result.outcome === 'client-gone' ? 'client_gone' : result.truncated ? 'truncated' : 'error' });

    log(result.outcome === 'success' ? 'info' : 'warn', 'request', {
      requestId,
      client,
      model: model.name,
      stream,
      outcome,
      ...(result.outcome === 'success' ? { provider: result.provider, answeredModel: result.model, continued: result.continued } : {}),
      ...(result.outcome === 'error' ? { errorClass: result.error.class, error: result.error.message } : {}),
      attempts: attemptSummary(result.attempts),
      latencyMs: Date.now() - started,
      ...(result.outcome === 'success' && result.firstTokenMs !== undefined ? { timeToFirstTokenMs: result.firstTokenMs } : {}),
      ...(result.outcome !== 'client-gone' && result.usage ? { promptTokens: result.usage.prompt_tokens, completionTokens: result.usage.completion_tokens } : { estimatedPromptTokens: promptTokens }),
      promptHash: createHash('sha256').update(JSON.stringify(body.messages)).digest('hex').slice(0, 16),
      ...(options.logPrompts ? { messages: body.messages } : {}),
    });

    if (result.outcome === 'client-gone') {
      response.destroy();
      return;
    }
    if (result.outcome === 'error') {
      if (sink instanceof StreamSink && sink.committed()) sink.fail(result.error, result.error.class);
      else sendError(response, clientError(result.error), requestId, { ...headers(), ...(result.error.retryAfterMs !== undefined ? { 'retry-after': String(Math.ceil(result.error.retryAfterMs / 1000)) } : {}) });
      return;
    }
    if (sink instanceof StreamSink) sink.finish(result.usage);
    else sendJson(response, 200, (sink as JsonSink).completion(requestId, result.model, result.usage), { 'x-request-id': requestId, ...headers() });
  };

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
    throw clientError(last);
  };

  return http.createServer((request, response) => {
    const requestId = `chatcmpl-${randomUUID().replaceAll('-', '').slice(0, 24)}`;
    const path = (request.url ?? '/').split('?')[0];
    const controller = new AbortController();
    // The client went away: stop the upstream work and free the provider's connection.
    response.on('close', () => {
      if (!response.writableFinished) controller.abort();
    });
    const problems = runtime.problems();
    void (async () => {
      try {
        if (path === '/livez') return void response.writeHead(200).end('ok\n');
        if (path === '/readyz') {
          if (options.draining?.()) return void response.writeHead(503, { 'content-type': 'text/plain' }).end('not ready: draining for shutdown\n');
          if (problems.length) return void response.writeHead(503, { 'content-type': 'text/plain' }).end(`not ready:\n${problems.join('\n')}\n`);
          return void response.writeHead(200).end('ok\n');
        }
        const auth = runtime.clients.authenticate(runtime.current().config.auth, request.headers.authorization);
        if (path === '/v1/models' && request.method === 'GET') {
          if (!auth.ok) throw new HttpError(401, auth.message, 'invalid_request_error', 'invalid_api_key');
          return void sendJson(response, 200, { object: 'list', data: runtime.current().config.models.map((m) => ({ id: m.name, object: 'model', created: 0, owned_by: 'llmroute' })) });
        }
        const known = path === '/v1/chat/completions' || path === '/v1/embeddings';
        if (!known) throw new HttpError(404, `no route for ${request.method} ${path}; this gateway serves POST /v1/chat/completions, POST /v1/embeddings and GET /v1/models`, 'invalid_request_error', 'unknown_url');
        if (request.method !== 'POST') throw new HttpError(405, `${path} takes POST`, 'invalid_request_error', 'method_not_allowed');
        if (!auth.ok) throw new HttpError(401, auth.message, 'invalid_request_error', 'invalid_api_key');
        if (problems.length) throw new HttpError(503, `the gateway is not ready: ${problems.join('; ')}`, 'server_error', 'gateway_not_ready');
        if (path === '/v1/chat/completions') await handleChat(request, response, requestId, auth.client, controller.signal);
        else await handleEmbeddings(request, response, requestId);
      } catch (error) {
        if (error instanceof HttpError) sendError(response, error, requestId);
        else {
          log('error', 'unexpected error handling a request', { requestId, error: (error as Error).stack ?? String(error) });
          sendError(response, new HttpError(500, 'internal gateway error; see the gateway logs for request id ' + requestId, 'server_error'), requestId);
        }
      }
    })();
  });
}
