/**
 * OpenTelemetry tracing end to end: a gateway configured by the standard OTEL_* variables exports, with the real
 * OTLP/HTTP exporter, to a small OTLP receiver started here (JSON over HTTP on loopback), while the official OpenAI
 * SDK drives it through the fake providers. What the receiver got is checked: span names and kinds, parent and child
 * links, the caller's trace continued, GenAI and llmroute attributes, `traceparent` sent to each provider naming
 * its attempt's span, a caller that did not sample left unsampled, and no prompt, answer, token or key anywhere in
 * what was exported. The variables a rendered Deployment sets from `gateway.tracing` turn it on as the route says,
 * the collector's headers included. Without the variables, nothing is traced.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { tracingEnv } from '../../../src/render/gateway-deployment.js';
import { buildRoute, type TestGateway } from '../../support/gateway.js';
import { CLAUDE, GPT, GPT_MINI, KEYS, TIMEOUTS, gatewayFor, startFakes, stopFakes, type Fakes } from './fixtures.js';

/** An OTLP/HTTP traces receiver: keeps every request body it is sent, and answers with `status`. */
interface Receiver {
  url: string;
  bodies: string[];
  paths: string[];
  headers: IncomingHttpHeaders[];
  close(): Promise<void>;
}

async function startReceiver(status = 200): Promise<Receiver> {
  const bodies: string[] = [];
  const paths: string[] = [];
  const headers: IncomingHttpHeaders[] = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      paths.push(`${request.method} ${request.url} ${request.headers['content-type']}`);
      headers.push(request.headers);
      bodies.push(Buffer.concat(chunks).toString('utf8'));
      response.writeHead(status, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    paths,
    headers,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

interface AnyValue {
  stringValue?: string;
  intValue?: number | string;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: AnyValue[] };
}

/** An attribute value as OTLP/JSON writes it, back as JavaScript. */
function decode(value: AnyValue): unknown {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.boolValue !== undefined) return value.boolValue;
  return (value.arrayValue?.values ?? []).map(decode);
}

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  status?: { code?: number };
  attributes: Record<string, unknown>;
  events: { name: string; attributes: Record<string, unknown> }[];
  resource: Record<string, unknown>;
}

type Attribute = { key: string; value: AnyValue };
const attributesOf = (list: Attribute[] | undefined) => Object.fromEntries((list ?? []).map((a) => [a.key, decode(a.value)]));

/** Every span of every export request, with its resource's attributes. */
function spansOf(bodies: string[]): ExportedSpan[] {
  return bodies.flatMap((body) =>
    (JSON.parse(body) as { resourceSpans: { resource?: { attributes?: Attribute[] }; scopeSpans: { spans: (Omit<ExportedSpan, 'attributes' | 'events' | 'resource'> & { attributes?: Attribute[]; events?: { name: string; attributes?: Attribute[] }[] })[] }[] }[] }).resourceSpans.flatMap((rs) =>
      rs.scopeSpans.flatMap((ss) =>
        ss.spans.map((span) => ({
          ...span,
          attributes: attributesOf(span.attributes),
          events: (span.events ?? []).map((e) => ({ name: e.name, attributes: attributesOf(e.attributes) })),
          resource: attributesOf(rs.resource?.attributes),
        })),
      ),
    ),
  );
}

/** OTLP's SpanKind and StatusCode numbers. */
const SERVER = 2;
const CLIENT = 3;
const STATUS_ERROR = 2;

const SECRET_PROMPT = `secret prompt ${randomUUID()}`;
const SECRET_ANSWER = `secret answer ${randomUUID()}`;
const TOKEN = `client-token-${randomUUID()}`;
const CALLER = { traceId: randomBytes(16).toString('hex'), spanId: randomBytes(8).toString('hex') };
const UNSAMPLED = { traceId: randomBytes(16).toString('hex'), spanId: randomBytes(8).toString('hex') };
const USAGE = { prompt_tokens: 11, completion_tokens: 5 };

let fakes: Fakes;
let receiver: Receiver;
let gateway: TestGateway;
let spans: ExportedSpan[];

/** Starts a gateway with these OTEL_* variables set while it starts (they are read once, at startup). */
async function gatewayWithEnv(env: Record<string, string>, start: () => Promise<TestGateway>): Promise<TestGateway> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await start();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const startGateway = () =>
  gatewayFor(fakes, {
    models: [{ name: 'chat', pin: GPT, timeouts: TIMEOUTS, fallback: [{ provider: 'openai' }, { provider: 'anthropic', model: CLAUDE }] }],
    prices: { [CLAUDE]: { input: 1, output: 20 }, [GPT_MINI]: { input: 1, output: 20 } },
    clients: { web: TOKEN },
    flags: [{ name: 'mini-trial', percent: 100, set: { models: { chat: { pin: GPT_MINI } } } }],
  });

beforeAll(async () => {
  [fakes, receiver] = await Promise.all([startFakes(), startReceiver()]);
  // The base endpoint: the exporter posts to its /v1/traces.
  gateway = await gatewayWithEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SERVICE_NAME: 'support-gateway', OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test' }, startGateway);
  const client = gateway.client(TOKEN);
  const messages = [{ role: 'user' as const, content: SECRET_PROMPT }];

  // 1. Within the caller's trace: the primary has no quota, the fallback answers.
  fakes.openai.script({ kind: 'quota_exhausted' });
  fakes.anthropic.script({ kind: 'ok', text: SECRET_ANSWER, usage: USAGE });
  await client.chat.completions.create({ model: 'chat', messages }, { headers: { traceparent: `00-${CALLER.traceId}-${CALLER.spanId}-01`, tracestate: 'vendor=opaque' } });
  // 2. A stream with no caller trace: the primary cools down (a skipped step), the fallback streams.
  const stream = await client.chat.completions.create({ model: 'chat', messages, stream: true });
  for await (const chunk of stream) void chunk;
  // 3. A caller that did not sample its trace: nothing is recorded, the provider still gets the context.
  await client.chat.completions.create({ model: 'chat', messages }, { headers: { traceparent: `00-${UNSAMPLED.traceId}-${UNSAMPLED.spanId}-00` } });
  // 4. Refused before routing.
  await client.chat.completions.create({ model: 'nope', messages }).catch(() => undefined);
  // Stopping flushes what the batch processor holds.
  await gateway.stop();
  spans = spansOf(receiver.bodies);
}, 30_000);

afterAll(async () => {
  await gateway?.stop();
  await Promise.all([stopFakes(fakes), receiver?.close()]);
});

const requestSpans = () => spans.filter((s) => s.kind === SERVER);
const childrenOf = (parent: ExportedSpan) => spans.filter((s) => s.parentSpanId === parent.spanId && s.traceId === parent.traceId);

describe('tracing with an OTLP endpoint configured', () => {
  it('exports OTLP/HTTP JSON to the endpoint\'s /v1/traces, as the service named, with its resource', () => {
    expect(receiver.paths.length).toBeGreaterThan(0);
    for (const path of receiver.paths) expect(path).toBe('POST /v1/traces application/json');
    expect(spans[0]?.resource).toMatchObject({ 'service.name': 'support-gateway', 'llmroute.route': 'e2e', 'llmroute.environment': 'test', 'k8s.namespace.name': 'test', 'deployment.environment.name': 'test' });
  });

  it('makes a request a server span "chat {model}" in the caller\'s trace, with an attempt span per upstream request under it', () => {
    // The unsampled caller's request is not exported: three requests, not four.
    expect(requestSpans().map((s) => s.name)).toEqual(['chat chat', 'chat chat', 'chat nope']);
    const [first] = requestSpans();
    expect(first).toMatchObject({ traceId: CALLER.traceId, parentSpanId: CALLER.spanId });
    const attempts = childrenOf(first!);
    expect(attempts.map((s) => [s.name, s.kind])).toEqual([
      [`chat ${GPT_MINI}`, CLIENT],
      [`chat ${CLAUDE}`, CLIENT],
    ]);
    expect(spans.filter((s) => s.traceId === UNSAMPLED.traceId)).toEqual([]);
  });

  it('gives the request span the GenAI attributes and llmroute\'s: route, environment, client, flags, cost, outcome', () => {
    const [first, streamed, refused] = requestSpans();
    expect(first!.attributes).toEqual({
      'gen_ai.operation.name': 'chat',
      'gen_ai.request.model': 'chat',
      'gen_ai.response.model': CLAUDE,
      'gen_ai.response.id': expect.stringMatching(/^chatcmpl-/),
      'gen_ai.provider.name': 'anthropic',
      'gen_ai.usage.input_tokens': USAGE.prompt_tokens,
      'gen_ai.usage.output_tokens': USAGE.completion_tokens,
      'llmroute.route': 'e2e',
      'llmroute.environment': 'test',
      'llmroute.client': 'web',
      'llmroute.stream': false,
      'llmroute.outcome': 'success',
      'llmroute.variant': 'mini-trial',
      'llmroute.flags': ['mini-trial'],
      'llmroute.provider': 'anthropic',
      'llmroute.continued': false,
      'llmroute.attempts': 2,
      'llmroute.fallback_depth': 1,
      'llmroute.cost_usd': expect.closeTo((11 * 1 + 5 * 20) / 1e6, 9),
    });
    expect(first!.status?.code ?? 0).not.toBe(STATUS_ERROR);
    expect(streamed!.attributes).toMatchObject({ 'llmroute.stream': true, 'llmroute.outcome': 'success', 'llmroute.attempts': 1 });
    // The primary cooling down was skipped: an event, not a span.
    expect(streamed!.events).toEqual([{ name: 'llmroute.attempt.skipped', attributes: { 'llmroute.provider': 'openai', 'gen_ai.request.model': GPT_MINI, 'llmroute.attempt.result': 'skipped_cooldown' } }]);
    expect(childrenOf(streamed!).map((s) => s.attributes['llmroute.provider'])).toEqual(['anthropic']);
    // A refusal of the client's request is an error type, not a failed span: the gateway did not fail.
    expect(refused!.attributes).toMatchObject({ 'gen_ai.request.model': 'nope', 'error.type': 'model_not_found' });
    expect(refused!.status?.code ?? 0).not.toBe(STATUS_ERROR);
  });

  it('gives each attempt span its provider, number, result class and fallback depth', () => {
    const [failed, answered] = childrenOf(requestSpans()[0]!);
    expect(failed!.attributes).toEqual({
      'gen_ai.operation.name': 'chat',
      'gen_ai.request.model': GPT_MINI,
      'gen_ai.provider.name': 'openai',
      'server.address': '127.0.0.1',
      'server.port': Number(new URL(fakes.openai.url).port),
      'llmroute.provider': 'openai',
      'llmroute.attempt': 1,
      'llmroute.fallback_depth': 0,
      'llmroute.attempt.result': 'quota_exhausted',
      'error.type': 'quota_exhausted',
    });
    expect(failed!.status?.code).toBe(STATUS_ERROR);
    expect(answered!.attributes).toMatchObject({
      'gen_ai.request.model': CLAUDE,
      'gen_ai.response.model': CLAUDE,
      'gen_ai.provider.name': 'anthropic',
      'gen_ai.usage.input_tokens': USAGE.prompt_tokens,
      'gen_ai.usage.output_tokens': USAGE.completion_tokens,
      'llmroute.attempt': 2,
      'llmroute.fallback_depth': 1,
      'llmroute.attempt.result': 'success',
    });
    expect(answered!.attributes['error.type']).toBeUndefined();
  });

  it('sends each provider a traceparent naming its attempt\'s span; the caller\'s tracestate stays home', () => {
    const sent = [...fakes.openai.attempts, ...fakes.anthropic.attempts].sort((a, b) => a.at - b.at).map((a) => a.headers);
    const attempts = requestSpans()
      .slice(0, 2)
      .flatMap((request) => childrenOf(request));
    expect(sent.length).toBe(4);
    // Request 1: openai then anthropic; request 2: anthropic; request 3 (unsampled): openai still cooling, anthropic.
    expect(sent.slice(0, 3).map((h) => h.traceparent)).toEqual(attempts.map((s) => `00-${s.traceId}-${s.spanId}-01`));
    expect(sent[3]!.traceparent).toMatch(new RegExp(`^00-${UNSAMPLED.traceId}-[0-9a-f]{16}-00$`));
    expect(sent[3]!.traceparent).not.toContain(UNSAMPLED.spanId);
    for (const headers of sent) expect(headers.tracestate).toBeUndefined();
  });

  it('exports no prompt, no answer, no client token and no provider key', () => {
    const exported = receiver.bodies.join('\n');
    expect(exported.length).toBeGreaterThan(1000);
    for (const secret of [SECRET_PROMPT, SECRET_ANSWER, TOKEN, KEYS.openai, KEYS.anthropic, KEYS.azure, 'secret prompt', 'secret answer']) expect(exported).not.toContain(secret);
  });
});

describe('a collector that refuses the spans', () => {
  it('is told about in the gateway\'s log, at each export and at shutdown, and requests are served all the same', async () => {
    const refusing = await startReceiver(400);
    fakes.openai.reset();
    const traced = await gatewayWithEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${refusing.url}/custom/traces` }, () => gatewayFor(fakes, { models: [{ name: 'chat', pin: GPT, timeouts: TIMEOUTS, fallback: [{ provider: 'openai' }] }] }));
    const warnings = () => traced.logs.map((line) => JSON.parse(line) as { level: string; msg: string }).filter((l) => l.level === 'warn' && l.msg.startsWith('tracing: '));
    const ask = () => traced.client().chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] });
    try {
      await ask();
      // The batch goes out within 5 seconds; its failure reaches the log through OpenTelemetry's diagnostics.
      for (let i = 0; i < 80 && warnings().length === 0; i++) await sleep(100);
      expect(warnings().map((w) => w.msg)).toEqual([expect.stringContaining('Bad Request')]);
      await ask();
    } finally {
      // Stopping flushes the second request's spans, which fail too: logged, and the gateway stops all the same.
      await traced.stop();
      await refusing.close();
    }
    expect(refusing.paths).toEqual(['POST /custom/traces application/json', 'POST /custom/traces application/json']);
    expect(warnings().map((w) => w.msg)).toEqual([expect.stringContaining('Bad Request'), 'tracing: spans waiting at shutdown were not exported']);
  }, 15_000);
});

describe('tracing as a rendered Deployment configures it (gateway.tracing)', () => {
  it('exports to the endpoint with the collector\'s headers from their Secret, as <route>-<environment>, sampling by the ratio', async () => {
    const collector = await startReceiver();
    const apiKey = `collector-key-${randomUUID()}`;
    fakes.openai.reset();
    const options = { models: [{ name: 'chat', pin: GPT, timeouts: TIMEOUTS, fallback: [{ provider: 'openai' as const }] }] };
    const route = buildRoute({ ...options, providers: [{ name: 'openai', type: 'openai' }] });
    const environment = route.spec.environments[0]!;
    environment.gateway.tracing = { endpoint: collector.url, sampleRatio: 0, headersSecretRef: { name: 'otlp', key: 'headers' } };
    // What the kubelet gives the container: the values, and the Secret's value for the variable that references it.
    const secrets: Record<string, string> = { headers: `authorization=Bearer%20${apiKey},x-team=llm` };
    const env = Object.fromEntries(tracingEnv(route, environment).map((v) => [v.name, v.value ?? secrets[v.valueFrom?.secretKeyRef?.key ?? '']!]));
    const traced = await gatewayWithEnv(env, () => gatewayFor(fakes, options));
    try {
      const client = traced.client();
      // Started here, at ratio 0: not sampled. A sampled caller's request follows the caller.
      await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] });
      await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] }, { headers: { traceparent: `00-${CALLER.traceId}-${CALLER.spanId}-01` } });
    } finally {
      await traced.stop();
      await collector.close();
    }
    const exported = spansOf(collector.bodies);
    expect(exported.filter((s) => s.kind === SERVER).map((s) => s.traceId)).toEqual([CALLER.traceId]);
    expect(exported[0]?.resource).toMatchObject({ 'service.name': 'e2e-test' });
    expect(collector.headers.map((h) => [h.authorization, h['x-team']])).toEqual(collector.bodies.map(() => [`Bearer ${apiKey}`, 'llm']));
    expect(traced.logs.join('\n')).not.toContain(apiKey);
  });
});

describe('tracing without an OTLP endpoint', () => {
  it('is off: no tracing in the runtime, nothing exported, no traceparent sent', async () => {
    const before = receiver.bodies.length;
    fakes.openai.reset();
    const plain = await gatewayFor(fakes, { models: [{ name: 'chat', pin: GPT, timeouts: TIMEOUTS, fallback: [{ provider: 'openai' }] }] });
    try {
      expect(plain.gateway.runtime.current().tracing).toBeUndefined();
      await plain.client().chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] }, { headers: { traceparent: `00-${CALLER.traceId}-${CALLER.spanId}-01` } });
      expect(fakes.openai.attempts.map((a) => a.headers.traceparent)).toEqual([undefined]);
    } finally {
      await plain.stop();
    }
    expect(receiver.bodies.length).toBe(before);
  });
});
