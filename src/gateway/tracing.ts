/**
 * OpenTelemetry tracing of chat completions, off unless an OTLP endpoint is configured (tracing-settings.ts). Off,
 * this module is not even loaded: the gateway has no Tracing, and a request asks for none. On, each request is a
 * server span `chat {model}` with the GenAI semantic conventions' attributes and llmroute's own (route, environment,
 * client, flags, cost), and each upstream attempt a client span under it, whose context goes to the provider in
 * `traceparent`. An incoming `traceparent` makes the request span a child of the caller's. Spans are exported over
 * OTLP/HTTP with JSON, in batches.
 *
 * Spans hold names, counts, classes and ids, never text: no prompt, answer, error message (a provider's may quote a
 * key) or key, and no header other than traceparent is read or written.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { DiagLogLevel, ROOT_CONTEXT, SpanKind, SpanStatusCode, createTraceState, diag, isSpanContextValid, trace, type Attributes, type Span, type SpanContext, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, detectResources, resourceAttributesEnvDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOffSampler, AlwaysOnSampler, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider, type Sampler } from '@opentelemetry/sdk-trace';
import type { CompiledModel, CompiledProvider, GatewayConfig } from '../api/gateway-config.js';
import { ERROR_OUTCOMES } from '../api/metric-names.js';
import type { ProviderType } from '../api/schema.js';
import type { Logger } from '../log.js';
import { VERSION } from '../version.js';
import type { AttemptResult } from './attempt.js';
import { HttpError } from './http-error.js';
import type { AttemptRecord, RouteResult, RouterDeps } from './router.js';
import type { SamplerSpec, TracingSettings } from './tracing-settings.js';

/** The sampler `spec` describes. */
function samplerOf(spec: SamplerSpec): Sampler {
  const root = spec.root === 'always_off' ? new AlwaysOffSampler() : spec.root === 'traceidratio' ? new TraceIdRatioBasedSampler(spec.ratio) : new AlwaysOnSampler();
  return spec.parentBased ? new ParentBasedSampler({ root }) : root;
}

/** The caller's span from W3C `traceparent` (and its `tracestate`); undefined when absent or malformed. */
export function callerSpan(headers: IncomingHttpHeaders): SpanContext | undefined {
  const header = headers.traceparent;
  const match = typeof header === 'string' ? /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/.exec(header.trim()) : null;
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match as unknown as [string, string, string, string, string, string | undefined];
  // Version ff is invalid; version 00 has exactly four fields, later versions may add more.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  const state = headers.tracestate;
  const context: SpanContext = { traceId, spanId, traceFlags: parseInt(flags, 16), isRemote: true, ...(typeof state === 'string' ? { traceState: createTraceState(state) } : {}) };
  return isSpanContextValid(context) ? context : undefined;
}

/** `traceparent` naming `context` as the parent of what the receiver does. */
export function traceparent(context: SpanContext): string {
  return `00-${context.traceId}-${context.spanId}-${(context.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/** Well-known `gen_ai.provider.name` values; other providers go by their name in the route. */
const GEN_AI_PROVIDER: Partial<Record<ProviderType, string>> = { openai: 'openai', 'azure-openai': 'azure.ai.openai', anthropic: 'anthropic' };
const genAiProvider = (provider: CompiledProvider) => GEN_AI_PROVIDER[provider.type] ?? provider.name;

const usageAttributes = (usage: { prompt_tokens: number; completion_tokens: number } | undefined): Attributes =>
  usage ? { 'gen_ai.usage.input_tokens': usage.prompt_tokens, 'gen_ai.usage.output_tokens': usage.completion_tokens } : {};

export interface RequestStart {
  headers: IncomingHttpHeaders;
  /** The model the client asked for (a route model name). */
  model: string;
  client: string;
  requestId: string;
  stream: boolean;
}

export interface RequestEnd {
  /** The `outcome` label of llmroute_requests_total. */
  outcome: string;
  variant: string;
  flags: readonly string[];
  /** Charged for every attempt, the answer and the waste. */
  costUSD: number;
}

/** The spans of one request: its server span, and the client span of the upstream attempt in progress. */
export class RequestTrace {
  private attempts = 0;
  private open: Span | undefined;
  private providers: readonly CompiledProvider[] = [];

  constructor(
    private readonly tracer: Tracer,
    private readonly span: Span,
  ) {}

  /** `deps` with each upstream attempt traced: a span from the request it sends until the router hears its result. */
  routing(deps: RouterDeps, model: CompiledModel): RouterDeps {
    this.providers = deps.config.providers;
    return {
      ...deps,
      adapter: (provider) => {
        const adapter = deps.adapter(provider);
        return {
          ...adapter,
          chatRequest: (request, target) => {
            const http = adapter.chatRequest(request, target);
            const depth = model.fallback.findIndex((step) => step.provider === target.provider.name && step.model === target.model);
            const span = this.startAttempt(target.provider, target.model, depth, http.url);
            return { ...http, headers: { ...http.headers, traceparent: traceparent(span.spanContext()) } };
          },
        };
      },
      observer: {
        ...deps.observer,
        attempt: (record, result) => {
          this.endAttempt(record, result);
          deps.observer.attempt(record, result);
        },
      },
    };
  }

  /** What the request came to. */
  finish(result: RouteResult, end: RequestEnd): void {
    const attributes: Attributes = {
      'llmroute.outcome': end.outcome,
      'llmroute.variant': end.variant,
      'llmroute.flags': [...end.flags],
      'llmroute.cost_usd': end.costUSD,
      'llmroute.attempts': this.attempts,
      'llmroute.fallback_depth': result.depth,
    };
    if (result.outcome === 'success') {
      const provider = this.providers.find((p) => p.name === result.provider);
      Object.assign(attributes, {
        'gen_ai.response.model': result.model,
        'llmroute.provider': result.provider,
        'llmroute.continued': result.continued,
        ...(provider ? { 'gen_ai.provider.name': genAiProvider(provider) } : {}),
        ...usageAttributes(result.usage),
      });
    }
    if (result.outcome === 'error') attributes['error.type'] = result.error.class;
    this.span.setAttributes(attributes);
    if ((ERROR_OUTCOMES as readonly string[]).includes(end.outcome)) this.span.setStatus({ code: SpanStatusCode.ERROR });
  }

  /** The request was answered by sharing another's upstream call (coalesced): it has no attempts of its own. */
  coalesced(): void {
    this.span.setAttribute('llmroute.coalesced', true);
  }

  /** The request ended with an exception: the gateway's refusal (an HttpError) or a fault. */
  failed(error: unknown): void {
    const refusal = error instanceof HttpError;
    this.span.setAttribute('error.type', refusal ? (error.code ?? error.type) : error instanceof Error ? error.name : typeof error);
    // A refusal of the client's request (4xx) is not the gateway failing, as for HTTP server spans.
    if (!refusal || error.status >= 500) this.span.setStatus({ code: SpanStatusCode.ERROR });
  }

  end(): void {
    // An attempt still open when the request ends was cut short: the client left, or the request failed.
    this.open?.setAttribute('error.type', 'client_gone');
    this.open?.end();
    this.span.end();
  }

  private startAttempt(provider: CompiledProvider, model: string, depth: number, url: string): Span {
    this.open?.end();
    this.attempts++;
    const server = new URL(url);
    this.open = this.tracer.startSpan(
      `chat ${model}`,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          'gen_ai.operation.name': 'chat',
          'gen_ai.request.model': model,
          'gen_ai.provider.name': genAiProvider(provider),
          'server.address': server.hostname,
          ...(server.port ? { 'server.port': Number(server.port) } : {}),
          'llmroute.provider': provider.name,
          'llmroute.attempt': this.attempts,
          'llmroute.fallback_depth': depth,
        },
      },
      trace.setSpan(ROOT_CONTEXT, this.span),
    );
    return this.open;
  }

  private endAttempt(record: AttemptRecord, result: AttemptResult | undefined): void {
    const span = this.open;
    if (span === undefined) {
      // A step skipped without a request (breaker open, cooling down, no key, throttled): no span, an event.
      this.span.addEvent('llmroute.attempt.skipped', { 'llmroute.provider': record.provider, 'gen_ai.request.model': record.model, 'llmroute.attempt.result': record.outcome });
      return;
    }
    this.open = undefined;
    span.setAttribute('llmroute.attempt.result', record.outcome);
    if (result?.kind === 'complete') span.setAttributes({ 'gen_ai.response.model': result.model ?? record.model, ...usageAttributes(result.usage) });
    if (result?.kind === 'failed') {
      span.setAttributes({ 'error.type': result.error.class, ...usageAttributes(result.usage) });
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end();
  }
}

/** A gateway's tracer, exporting to the configured endpoint. */
export class Tracing {
  private constructor(
    private readonly provider: TracerProvider,
    private readonly tracer: Tracer,
    private readonly route: GatewayConfig['route'],
    private readonly log: Logger,
  ) {}

  /** Starts exporting as `settings` say (tracing-settings.ts); settings that cannot be honoured are logged. */
  static start(settings: TracingSettings, route: GatewayConfig['route'], log: Logger): Tracing {
    for (const warning of settings.warnings) log('warn', `tracing: ${warning}`, {});
    // Failed exports go to OpenTelemetry's diagnostic logger, silent unless set: into the gateway's log, warnings
    // and errors only. (One per process: the last gateway started in it owns it.)
    const report = (message: string) => log('warn', `tracing: ${message}`, {});
    const quiet = () => undefined;
    diag.setLogger({ error: report, warn: report, info: quiet, debug: quiet, verbose: quiet }, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
    const resource = defaultResource()
      .merge(
        resourceFromAttributes({
          'service.name': settings.serviceName ?? `${route.name}-${route.environment}`,
          'service.version': VERSION,
          'llmroute.route': route.name,
          'llmroute.environment': route.environment,
          ...(route.namespace ? { 'k8s.namespace.name': route.namespace } : {}),
        }),
      )
      // OTEL_RESOURCE_ATTRIBUTES (read by the detector from the process environment) win over the defaults above.
      .merge(detectResources({ detectors: [resourceAttributesEnvDetector] }));
    // The exporter reads the rest of its settings (headers, time-out, compression, TLS files) from OTEL_EXPORTER_OTLP_*.
    const provider = new TracerProvider({ resource, sampler: samplerOf(settings.sampler), spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: settings.url }) })] });
    // The origin only: a URL may carry credentials.
    log('info', 'tracing: exporting spans over OTLP/HTTP', { endpoint: new URL(settings.url).origin });
    return new Tracing(provider, provider.getTracer('llmroute', VERSION), route, log);
  }

  /** Starts the span of a chat completion request. */
  request(start: RequestStart): RequestTrace {
    const caller = callerSpan(start.headers);
    const span = this.tracer.startSpan(
      `chat ${start.model}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          'gen_ai.operation.name': 'chat',
          'gen_ai.request.model': start.model,
          'gen_ai.response.id': start.requestId,
          'llmroute.route': this.route.name,
          'llmroute.environment': this.route.environment,
          'llmroute.client': start.client,
          'llmroute.stream': start.stream,
        },
      },
      caller ? trace.setSpanContext(ROOT_CONTEXT, caller) : ROOT_CONTEXT,
    );
    return new RequestTrace(this.tracer, span);
  }

  /** Exports what is left; after this, spans are dropped. A collector that fails does not fail the shutdown. */
  async shutdown(): Promise<void> {
    await this.provider.shutdown().catch((error: unknown) => this.log('warn', 'tracing: spans waiting at shutdown were not exported', { error: String(error) }));
  }
}
