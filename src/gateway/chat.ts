/**
 * `POST /v1/chat/completions`: from a parsed request to an answer. Admission first (the model exists, flags pick the
 * variant, the prompt fits the model's caps, the budget has room), then the router, then accounting: metrics, cost,
 * waste, budget settlement and one log line. Identical deterministic non-streaming requests share one upstream call.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CompiledModel } from '../api/gateway-config.js';
import type { Logger } from '../log.js';
import { RequestAccount } from './accounting.js';
import type { BudgetGate } from './budget-gate.js';
import { coalescingKey, type Coalescer } from './coalesce.js';
import { CLIENT_ERROR, openAIError, POLICIES, type UpstreamError } from './errors.js';
import { applyFlags, FLAGS_HEADER, flagsHeader, selectFlags, USER_HEADER, variantLabel } from './flags.js';
import type { GatewayMetrics } from './metrics.js';
import { HttpError } from './http-error.js';
import { LimiterError, type Limiter, type Reservation } from './limiter.js';
import { route, type AttemptRecord, type RouteResult } from './router.js';
import type { Snapshot } from './runtime.js';
import { JsonSink, StreamSink } from './sinks.js';
import type { RequestTrace } from './tracing.js';
import { countPromptTokens, inputLimitError, maxOutputTokens } from './tokens.js';
import { admissionCounting } from './tokenizers/families.js';
import type { ChatChunk, ChatCompletion, ChatRequest } from './types.js';

export interface ChatContext {
  snapshot: Snapshot;
  metrics: GatewayMetrics;
  log: Logger;
  coalescer: Coalescer<JsonAnswer>;
  budgets: BudgetGate | undefined;
  logPrompts: boolean;
  /** Models already warned about for having no price (warned once per process). */
  unpricedWarned: Set<string>;
  /** The caller's own rate limit (`clients[].limits`), when it has one. */
  clientLimiter?: Limiter | undefined;
}

export interface JsonAnswer {
  status: number;
  body: unknown;
  headers: Record<string, string>;
}

export function validChatRequest(body: unknown): ChatRequest {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'request body must be a JSON object');
  const request = body as ChatRequest;
  if (typeof request.model !== 'string' || !request.model) throw new HttpError(400, 'you must provide a model parameter', 'invalid_request_error', null, 'model');
  if (!Array.isArray(request.messages) || request.messages.length === 0) throw new HttpError(400, "'messages' must be a non-empty array", 'invalid_request_error', null, 'messages');
  for (const [i, message] of request.messages.entries()) {
    if (!message || typeof message !== 'object' || typeof message.role !== 'string') throw new HttpError(400, `messages[${i}] must be an object with a role`, 'invalid_request_error', null, `messages[${i}]`);
  }
  return request;
}

/** The status and body for a request whose every step failed, keeping the original reason. */
export function clientError(error: UpstreamError): HttpError {
  const mapped = CLIENT_ERROR[error.class];
  return new HttpError(mapped.status, error.message, mapped.type, error.code ?? error.class, null, error.retryAfterMs !== undefined ? { 'retry-after': String(Math.ceil(error.retryAfterMs / 1000)) } : {});
}

/**
 * Applies the model's `maxOutputTokens`, which bounds cost: a request without a limit gets the cap; one over it is
 * clamped to it, or refused when the model says `overMaxOutputTokens: reject`.
 */
function capOutput(body: ChatRequest, model: CompiledModel): ChatRequest {
  const cap = model.maxOutputTokens;
  if (cap === undefined) return body;
  const field = body.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens';
  const asked = body[field];
  if (asked !== undefined && asked > cap && model.overMaxOutputTokens === 'reject') {
    throw new HttpError(400, `${field} is ${asked}, ${asked - cap} over model "${model.name}"'s limit of ${cap}; ask for at most ${cap}`, 'invalid_request_error', 'max_tokens_exceeded', field);
  }
  return asked === undefined || asked > cap ? { ...body, [field]: cap } : body;
}

function outcomeOf(result: RouteResult): string {
  if (result.outcome === 'success') return 'success';
  if (result.outcome === 'client-gone') return 'client_gone';
  if (result.truncated) return 'truncated';
  const policy = POLICIES[result.error.class];
  if (!policy.failover && !policy.retry) return 'rejected';
  return result.error.class === 'timeout' || result.error.class === 'stream_stall' ? 'timeout' : 'error';
}

const served = (attempts: AttemptRecord[], inProgress = 0) => String(attempts.filter((a) => !a.outcome.startsWith('skipped')).length + inProgress);

export async function handleChat(ctx: ChatContext, body: ChatRequest, request: IncomingMessage, response: ServerResponse, requestId: string, client: string, signal: AbortSignal): Promise<void> {
  // Tracing off: no span, and `trace` below stays undefined.
  const trace = ctx.snapshot.tracing?.request({ headers: request.headers, model: body.model, client, requestId, stream: body.stream === true });
  if (trace === undefined) return serveChat(ctx, body, request, response, requestId, client, signal, undefined);
  try {
    await serveChat(ctx, body, request, response, requestId, client, signal, trace);
  } catch (error) {
    trace.failed(error);
    throw error;
  } finally {
    trace.end();
  }
}

async function serveChat(ctx: ChatContext, body: ChatRequest, request: IncomingMessage, response: ServerResponse, requestId: string, client: string, signal: AbortSignal, trace: RequestTrace | undefined): Promise<void> {
  const started = Date.now();
  const { config } = ctx.snapshot;
  const base = config.models.find((m) => m.name === body.model);
  if (!base) throw new HttpError(404, `model "${body.model}" does not exist on this gateway; available: ${config.models.map((m) => m.name).join(', ')}`, 'invalid_request_error', 'model_not_found', 'model');
  const userHeader = request.headers[USER_HEADER];
  const selection = selectFlags(config.flags, {
    model: base.name,
    client,
    requestId,
    ...(typeof body.user === 'string' ? { user: body.user } : {}),
    ...(typeof userHeader === 'string' ? { header: userHeader } : {}),
  });
  const model = applyFlags(base, selection.flags);
  const variant = variantLabel(selection.flags);
  const flags = flagsHeader(selection.flags);
  const flagHeaders: Record<string, string> = flags ? { [FLAGS_HEADER]: flags } : {};
  const prompt = await countPromptTokens(body, admissionCounting(config, model), model.maxInputTokens);
  const overInput = inputLimitError(prompt, model);
  if (overInput) throw overInput;
  const promptTokens = prompt.tokens;
  const upstreamBody = capOutput(body, model);

  const execute = async (sinkFor: () => StreamSink | JsonSink, runSignal: AbortSignal) => {
    let routed = model;
    let admitted = ctx.budgets ? await ctx.budgets.admit({ client, model, promptTokens, maxOutputTokens: maxOutputTokens(upstreamBody, model), now: new Date() }) : undefined;
    if (admitted && !admitted.ok) {
      if (!('degradeTo' in admitted)) {
        ctx.metrics.budgetRejected.inc({ scope: admitted.exceeded.scope, window: admitted.exceeded.window });
        ctx.log('warn', 'request', { requestId, client, model: model.name, stream: body.stream === true, outcome: 'budget_exceeded', budget: admitted.exceeded.scope, window: admitted.exceeded.window, error: admitted.error.message, latencyMs: Date.now() - started });
        throw admitted.error.alreadyAccounted();
      }
      // `onExhausted: degrade`: keep serving, with the route's cheaper model, outside the spent budget.
      ctx.log('warn', 'budget exhausted; serving the cheaper model instead', { requestId, client, model: model.name, degradeTo: admitted.degradeTo.name, budget: admitted.exceeded.scope, window: admitted.exceeded.window });
      ctx.metrics.degraded.inc({ model: model.name, to: admitted.degradeTo.name });
      routed = admitted.degradeTo;
      admitted = undefined;
    }
    const estimate = promptTokens + maxOutputTokens(upstreamBody, routed);
    let clientReservation: Reservation | undefined;
    if (ctx.clientLimiter) {
      try {
        clientReservation = await ctx.clientLimiter.acquire({ tokens: estimate, signal: runSignal, deadlineMs: Date.now() + routed.timeouts.totalSeconds * 1000 });
      } catch (error) {
        if (admitted?.ok) await admitted.settle(0);
        if (!(error instanceof LimiterError)) throw error;
        throw new HttpError(429, `client "${client}" is over its rate limit (${error.message}); slow down`, 'rate_limit_error', 'rate_limit_exceeded', null, { 'retry-after': String(Math.max(1, Math.ceil(error.retryAfterMs / 1000))) });
      }
    }
    const sink = sinkFor();
    const account = new RequestAccount(config.prices, promptTokens);
    let attemptsSoFar: AttemptRecord[] = [];
    let depthSoFar = 0;
    let providerSoFar = '';
    let attemptCharacters = 0;
    if (sink instanceof StreamSink) sink.setHeaders(() => ({ 'x-llmroute-provider': providerSoFar, 'x-llmroute-attempts': served(attemptsSoFar, 1), 'x-llmroute-fallback-depth': String(depthSoFar), ...flagHeaders }));
    const deps = trace ? trace.routing(ctx.snapshot.deps, routed) : ctx.snapshot.deps;
    const tracking = {
      ...deps,
      observer: {
        ...deps.observer,
        attempt: (record: AttemptRecord, attemptResult?: Parameters<typeof deps.observer.attempt>[1]) => {
          attemptsSoFar = [...attemptsSoFar, record];
          account.attempt(record, attemptResult, attemptCharacters);
          attemptCharacters = 0;
          deps.observer.attempt(record, attemptResult);
        },
      },
    };
    const writing = {
      write: (chunk: ChatChunk, provider: string, answered: string, depth: number) => {
        providerSoFar = provider;
        // The router's step, not the provider's first step: a provider may appear twice (with another model).
        depthSoFar = depth;
        const delta = chunk.choices[0]?.delta;
        attemptCharacters += (typeof delta?.content === 'string' ? delta.content.length : 0) + (delta?.tool_calls?.reduce((n, c) => n + (c.function?.arguments?.length ?? 0), 0) ?? 0);
        sink.write(chunk, provider, answered);
      },
      committed: () => sink.committed(),
      reset: () => sink.reset(),
    };
    const result = await route(tracking, routed, capOutput(upstreamBody, routed), writing, runSignal);
    if (clientReservation && ctx.clientLimiter) ctx.clientLimiter.settle(clientReservation, result.outcome !== 'client-gone' && result.usage ? result.usage.total_tokens : estimate);
    if (admitted?.ok) await admitted.settle(account.totalUSD());
    record(result, account, sink instanceof StreamSink);
    return { result, sink };
  };

  const record = (result: RouteResult, account: RequestAccount, stream: boolean) => {
    const { metrics } = ctx;
    const outcome = outcomeOf(result);
    trace?.finish(result, { outcome, variant, flags: selection.flags.map((f) => f.name), costUSD: account.totalUSD() });
    metrics.requests.inc({ model: model.name, client, variant, outcome });
    metrics.requestDuration.observe({ model: model.name, variant }, (Date.now() - started) / 1000);
    for (const charge of account.charges) {
      if (charge.wasted) metrics.wastedCost.inc({ model: model.name, provider: charge.provider, client }, charge.usd);
      else metrics.cost.inc({ model: model.name, provider: charge.provider, client, variant }, charge.usd);
    }
    for (const unpriced of account.unpriced) {
      metrics.unknownPrice.inc({ model: unpriced });
      if (!ctx.unpricedWarned.has(unpriced)) {
        ctx.unpricedWarned.add(unpriced);
        ctx.log('warn', 'no price known for a model: its cost is not counted against budgets; add it to spec.prices', { model: unpriced });
      }
    }
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
    ctx.log(result.outcome === 'success' ? 'info' : 'warn', 'request', {
      requestId,
      client,
      model: model.name,
      ...(selection.flags.length ? { flags: selection.flags.map((f) => f.name) } : {}),
      stream,
      outcome,
      ...(result.outcome === 'success' ? { provider: result.provider, answeredModel: result.model, continued: result.continued } : {}),
      ...(result.outcome === 'error' ? { errorClass: result.error.class, error: result.error.message } : {}),
      attempts: result.attempts.map((a) => ({ provider: a.provider, model: a.model, result: a.outcome, ms: a.durationMs })),
      latencyMs: Date.now() - started,
      ...(result.outcome === 'success' && result.firstTokenMs !== undefined ? { timeToFirstTokenMs: result.firstTokenMs } : {}),
      ...(result.outcome !== 'client-gone' && result.usage ? { promptTokens: result.usage.prompt_tokens, completionTokens: result.usage.completion_tokens } : prompt.exact ? { countedPromptTokens: promptTokens } : { estimatedPromptTokens: promptTokens }),
      costUSD: Number(account.totalUSD().toFixed(6)),
      promptHash: createHash('sha256').update(JSON.stringify(body.messages)).digest('hex').slice(0, 16),
      ...(ctx.logPrompts ? { messages: body.messages } : {}),
    });
  };

  const finalHeaders = (result: RouteResult) => ({
    'x-request-id': requestId,
    ...(result.outcome === 'success' ? { 'x-llmroute-provider': result.provider } : {}),
    'x-llmroute-attempts': served(result.attempts),
    'x-llmroute-fallback-depth': String(result.depth),
    ...flagHeaders,
  });

  if (body.stream === true) {
    const { result, sink } = await execute(() => new StreamSink(response, requestId, body.stream_options?.include_usage === true), signal);
    const stream = sink as StreamSink;
    if (result.outcome === 'client-gone') return void response.destroy();
    if (result.outcome === 'error') {
      if (stream.committed()) return stream.fail(result.error, result.error.class);
      const error = clientError(result.error);
      throw new HttpError(error.status, error.message, error.type, error.code, null, { ...finalHeaders(result), ...error.headers }).alreadyAccounted();
    }
    return stream.finish(result.usage);
  }

  const answer = async (runSignal: AbortSignal): Promise<JsonAnswer> => {
    const { result, sink } = await execute(() => new JsonSink(), runSignal);
    if (result.outcome === 'client-gone') return { status: 499, body: undefined, headers: {} };
    if (result.outcome === 'error') {
      const error = clientError(result.error);
      return { status: error.status, body: openAIError(error.message, error.type, error.code), headers: { ...finalHeaders(result), ...error.headers } };
    }
    const completion: ChatCompletion = (sink as JsonSink).completion(requestId, result.model, result.usage);
    return { status: 200, body: completion, headers: finalHeaders(result) };
  };
  const idempotencyKey = request.headers['idempotency-key'];
  const key = coalescingKey({ client, body, variant, ...(typeof idempotencyKey === 'string' ? { idempotencyKey } : {}) });
  // A shared upstream call must not end because the first of its callers left.
  const outcome = key ? await ctx.coalescer.run(key, () => answer(new AbortController().signal)) : { value: await answer(signal), shared: false };
  if (outcome.shared) {
    ctx.metrics.coalesced.inc({ model: model.name });
    trace?.coalesced();
  }
  const { status, body: payload, headers } = outcome.value;
  if (status === 499) return void response.destroy();
  const text = JSON.stringify(payload);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  response.end(text);
}
