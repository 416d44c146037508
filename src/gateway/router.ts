/**
 * Walks a model's fallback chain for one request. Each step is a provider asked for a specific model (never the
 * client's alias). Within a step: the provider's keys in order (a rejected key is set aside), retries with backoff
 * where the error class allows and the retry budget has room, and the provider's own Retry-After. Across steps: skip
 * providers whose breaker is open or whose quota is cooling down, skip models too small for the prompt, and continue
 * an answer that was cut after part of it reached the client. Every attempt is reported to the observer.
 */
import type { CompiledModel, CompiledProvider, GatewayConfig } from '../api/gateway-config.js';
import { Accumulator, addUsage } from './accumulate.js';
import { attempt, type AttemptResult } from './attempt.js';
import { retryDelay } from './backoff.js';
import type { BreakerRegistry } from './breaker.js';
import { continuable, continuationRequest, prefillSeam } from './continuation.js';
import type { Cooldowns } from './cooldown.js';
import { POLICIES, type ErrorClass, type UpstreamError } from './errors.js';
import type { KeyStore } from './key-store.js';
import { LimiterError, type Limiter } from './limiter.js';
import type { ProviderAdapter } from './providers/adapter.js';
import type { RetryBudget } from './retry-budget.js';
import { estimateRequestTokens } from './tokens.js';
import type { Transport } from './transport.js';
import type { ChatChunk, ChatRequest, Usage } from './types.js';

export interface AttemptRecord {
  provider: string;
  model: string;
  /** `success`, an error class, or why the step was skipped without a request. */
  outcome: 'success' | ErrorClass | 'skipped_breaker_open' | 'skipped_cooldown' | 'skipped_no_key' | 'skipped_limiter';
  durationMs: number;
  /** The fingerprint-free ordinal of the key used (0 = first source). */
  keyIndex?: number;
}

export interface RouterDeps {
  config: GatewayConfig;
  keys: KeyStore;
  transport(provider: CompiledProvider): Transport;
  adapter(provider: CompiledProvider): ProviderAdapter;
  breakers: BreakerRegistry;
  cooldowns: Cooldowns;
  limiter(provider: string): Limiter | undefined;
  retryBudget: RetryBudget;
  observer: RouterObserver;
  random?: () => number;
}

export interface RouterObserver {
  attempt(record: AttemptRecord, result?: AttemptResult): void;
  /** The provider answered with a model other than the one asked for: the alias moved, or a deployment changed. */
  drift(provider: string, asked: string, answered: string): void;
  malformedEvent(provider: string): void;
}

/** Where the answer goes: a client stream, or an accumulator for a non-streaming client. */
export interface Sink {
  /** Content for the client; `provider` and `model` say who produced it, `depth` which step of the chain it is. */
  write(chunk: ChatChunk, provider: string, model: string, depth: number): void;
  /** Whether anything has reached the client (a stream's bytes cannot be taken back). */
  committed(): boolean;
  /** Forgets partial output that never reached the client, before another provider starts over. */
  reset(): void;
}

export type RouteResult =
  | { outcome: 'success'; provider: string; model: string; usage?: Usage; attempts: AttemptRecord[]; depth: number; continued: boolean; firstTokenMs?: number }
  | { outcome: 'error'; error: UpstreamError; attempts: AttemptRecord[]; depth: number; truncated: boolean; usage?: Usage }
  | { outcome: 'client-gone'; attempts: AttemptRecord[]; depth: number };

function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The final error when every step failed: the last real failure, with how many providers were tried. */
function exhausted(last: UpstreamError | undefined, attempts: AttemptRecord[], model: CompiledModel): UpstreamError {
  const tried = [...new Set(attempts.map((a) => a.provider))];
  if (!last) {
    return { class: 'overloaded', provider: tried.at(-1) ?? '', message: `no provider of model "${model.name}" could be tried (${attempts.map((a) => `${a.provider}: ${a.outcome}`).join(', ')})` };
  }
  const prefix = tried.length > 1 ? `all ${tried.length} providers of model "${model.name}" failed; last: ` : '';
  return { ...last, message: `${prefix}provider "${last.provider}": ${last.message}` };
}

export async function route(deps: RouterDeps, model: CompiledModel, request: ChatRequest, sink: Sink, clientSignal: AbortSignal): Promise<RouteResult> {
  const { config } = deps;
  const started = Date.now();
  const deadline = started + model.timeouts.totalSeconds * 1000;
  const attempts: AttemptRecord[] = [];
  // What reached the client (or the accumulator) so far: the text a continuation must not repeat.
  let sent = new Accumulator();
  let usage: Usage | undefined;
  let lastError: UpstreamError | undefined;
  let continued = false;
  const tooSmall = new Set<string>();
  deps.retryBudget.recordRequest();
  const estimate = estimateRequestTokens(request, model);

  for (const [depth, step] of model.fallback.entries()) {
    const provider = config.providers.find((p) => p.name === step.provider);
    if (!provider || tooSmall.has(step.model)) continue;
    const skip = (outcome: AttemptRecord['outcome']) => {
      const record = { provider: provider.name, model: step.model, outcome, durationMs: 0 };
      attempts.push(record);
      deps.observer.attempt(record);
    };
    if (deps.cooldowns.isCooling(provider.name)) {
      skip('skipped_cooldown');
      lastError ??= { class: 'quota_exhausted', provider: provider.name, message: `quota exhausted; provider cooling down until ${new Date(deps.cooldowns.endsAt(provider.name) ?? 0).toISOString()}` };
      continue;
    }
    const breaker = deps.breakers.get(provider.name, step.model);
    const keys: (string | undefined)[] = deps.keys.keys(provider.name);
    if (keys.length === 0) {
      if (provider.keyRequired) {
        skip('skipped_no_key');
        lastError ??= { class: 'auth_failed', provider: provider.name, message: 'no usable key (missing, empty, or every key was rejected)' };
        continue;
      }
      keys.push(undefined);
    }
    let keyIndex = 0;
    let retries = 0;
    const adapter = deps.adapter(provider);
    for (;;) {
      // Asked before every attempt: a half-open breaker admits a limited number of probes.
      if (!breaker.allow()) {
        skip('skipped_breaker_open');
        break;
      }
      if (Date.now() >= deadline) {
        breaker.release();
        lastError = { class: 'timeout', provider: provider.name, message: `the request's ${model.timeouts.totalSeconds}s time limit was reached` };
        return { outcome: 'error', error: exhausted(lastError, attempts, model), attempts, depth, truncated: sink.committed(), ...(usage ? { usage } : {}) };
      }
      const limiter = deps.limiter(provider.name);
      let reservation;
      if (limiter) {
        try {
          reservation = await limiter.acquire({ tokens: estimate, signal: clientSignal, deadlineMs: deadline });
        } catch (error) {
          if (clientSignal.aborted) return { outcome: 'client-gone', attempts, depth };
          breaker.release();
          skip('skipped_limiter');
          const retryAfterMs = error instanceof LimiterError ? error.retryAfterMs : undefined;
          lastError = { class: 'rate_limited', provider: provider.name, message: `llmroute is throttling requests to stay under the provider's limits (${(error as Error).message})`, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
          break;
        }
      }
      const target = { provider, model: step.model, key: keys[keyIndex] };
      const partial = sent.text();
      const continuing = partial !== '' && sink.committed();
      const upstreamRequest = continuing ? continuationRequest(request, partial, adapter.supportsPrefill) : request;
      if (continuing) continued = true;
      const seam = continuing && adapter.supportsPrefill ? prefillSeam(partial) : undefined;
      const result = await attempt({
        transport: deps.transport(provider),
        adapter,
        target,
        request: upstreamRequest,
        firstTokenMs: model.timeouts.firstTokenSeconds * 1000,
        idleMs: model.timeouts.idleSeconds * 1000,
        deadline,
        clientSignal,
        onChunk: (received) => {
          const content = received.choices[0]?.delta.content;
          const joined = seam && typeof content === 'string' ? seam(content) : content;
          const chunk = joined === content ? received : { ...received, choices: received.choices.map((choice, i) => (i === 0 ? { ...choice, delta: { ...choice.delta, content: joined } } : choice)) };
          sent.add(chunk);
          sink.write(chunk, provider.name, chunk.model || step.model, depth);
        },
        onMalformed: () => deps.observer.malformedEvent(provider.name),
        onHeaders: (headers) => limiter?.observe(headers),
      });
      const record: AttemptRecord = { provider: provider.name, model: step.model, outcome: result.kind === 'failed' ? result.error.class : 'success', durationMs: result.durationMs, ...(target.key !== undefined ? { keyIndex } : {}) };
      if (result.kind !== 'client-gone') {
        attempts.push(record);
        deps.observer.attempt(record, result);
      }
      if (reservation && limiter) limiter.settle(reservation, result.kind === 'client-gone' ? estimate : (result.usage?.total_tokens ?? estimate));
      if (result.kind === 'client-gone') {
        breaker.release();
        return { outcome: 'client-gone', attempts, depth };
      }
      usage = addUsage(usage, result.usage);
      if (result.kind === 'complete') {
        breaker.success();
        const answered = result.model ?? step.model;
        if (!answered.startsWith(step.model)) deps.observer.drift(provider.name, step.model, answered);
        return { outcome: 'success', provider: provider.name, model: answered, ...(usage ? { usage } : {}), attempts, depth, continued, firstTokenMs: result.firstTokenMs };
      }

      const error = result.error;
      const policy = POLICIES[error.class];
      if (policy.breaker) breaker.failure();
      else breaker.release();
      lastError = error;
      if (result.producedOutput && !sink.committed()) {
        // Nothing reached the client: the next attempt starts the answer over.
        sink.reset();
        sent = new Accumulator();
      }
      if (sink.committed() && !continuable(sent.hasToolCalls())) {
        return { outcome: 'error', error: { ...error, message: `${error.message}; the answer had started with a tool call, which cannot be continued` }, attempts, depth, truncated: true, ...(usage ? { usage } : {}) };
      }
      if (!policy.failover && !policy.retry) {
        // The request itself is at fault (bad request, content filtered): another provider would refuse it too.
        return { outcome: 'error', error, attempts, depth, truncated: sink.committed(), ...(usage ? { usage } : {}) };
      }
      if (policy.nextKey && keyIndex + 1 < keys.length) {
        if (error.class === 'auth_failed' && target.key) deps.keys.setAside(provider.name, target.key, error.message);
        keyIndex++;
        continue;
      }
      if (error.class === 'auth_failed' && target.key) deps.keys.setAside(provider.name, target.key, error.message);
      if (policy.cooldownMs) deps.cooldowns.coolDown(provider.name, policy.cooldownMs);
      if (error.class === 'context_length_exceeded') tooSmall.add(step.model);
      if (policy.retry && !sink.committed()) {
        const delay = retryDelay({ attempt: retries, ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}), remainingMs: deadline - Date.now(), policy: config.retry, ...(deps.random ? { random: deps.random } : {}) });
        if ('wait' in delay && deps.retryBudget.tryAcquireRetry()) {
          if (!(await sleep(delay.wait, clientSignal))) return { outcome: 'client-gone', attempts, depth };
          retries++;
          continue;
        }
      }
      break;
    }
  }
  return { outcome: 'error', error: exhausted(lastError, attempts, model), attempts, depth: model.fallback.length - 1, truncated: sink.committed(), ...(usage ? { usage } : {}) };
}
