/**
 * A fault-injecting fake LLM provider: a real HTTP server on a loopback port speaking the OpenAI, Azure OpenAI and
 * Anthropic wire formats, scripted per request to answer (streaming or not) or to fail in each way real providers
 * fail. It records every attempt, so tests can assert what the gateway sent, with which key, and when.
 *
 * Routes: `POST /v1/chat/completions` and `/v1/embeddings` (OpenAI and OpenAI-compatible: use `${url}/v1` as the
 * baseURL), `POST /openai/deployments/:deployment/chat/completions?api-version=...` and `.../embeddings` (Azure:
 * baseURL `url`), `POST /v1/messages` (Anthropic: baseURL `url`). Its frames are written by hand here, not with the
 * gateway's own SSE writer, so that the two cannot share a mistake.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export type Wire = 'openai' | 'azure' | 'anthropic';

export interface ToolCallSpec {
  /** Defaults to `call_fake<i>` (OpenAI, Azure) or `toolu_fake<i>` (Anthropic). */
  id?: string;
  name: string;
  /** The arguments as JSON text, streamed in two pieces. */
  arguments: string;
}

/** What a successful answer contains and how fast it comes. */
export interface Answer {
  /** Streamed word by word. Default `Hello from the fake provider.` */
  text?: string;
  toolCalls?: ToolCallSpec[];
  /** Default: prompt tokens estimated from the request (characters / 4), one completion token per streamed piece. */
  usage?: { prompt_tokens: number; completion_tokens: number };
  /** The model the answer names. Default: the request's `model`, or on Azure the deployment's name. */
  model?: string;
  /** Default `tool_calls` when there are tool calls, else `stop`; mapped to Anthropic's stop reasons. */
  finishReason?: 'stop' | 'length' | 'tool_calls' | 'content_filter';
  /** Wait before the response starts (headers included): time to first byte. */
  delayMs?: number;
  /** Wait between two stream events. */
  chunkDelayMs?: number;
}

export type Behaviour =
  | ({ kind: 'ok' } & Answer)
  /** 429 with the wire's rate-limit body; `retry-after` (seconds) and `retry-after-ms` headers when given. */
  | { kind: 'rate_limited'; retryAfterSeconds?: number; retryAfterMs?: number }
  /** OpenAI and Azure: 429 `insufficient_quota`. Anthropic: 400 "Your credit balance is too low". */
  | { kind: 'quota_exhausted' }
  /** Default status 529 for Anthropic, 503 otherwise. */
  | { kind: 'overloaded'; status?: 503 | 529 }
  | { kind: 'server_error'; status?: 500 | 502 | 504 }
  /** The socket is reset (TCP RST) once the request is read, before any response. */
  | { kind: 'connection_reset' }
  /** The request is read and never answered, until the client gives up or the fake stops. */
  | { kind: 'timeout' }
  /** The stream delivers `afterChunks` content events, then goes silent with the connection open. */
  | ({ kind: 'stream_stall'; afterChunks: number } & Answer)
  /** The stream delivers `afterChunks` content events, then ends (`end`, a clean close) or breaks (`destroy`) without its terminator. */
  | ({ kind: 'stream_cut'; afterChunks: number; how?: 'end' | 'destroy' } & Answer)
  | { kind: 'auth_failed' }
  | { kind: 'context_length_exceeded' }
  /**
   * `prompt` (default): Azure's 400 `content_filter` with `innererror.content_filter_result` (Anthropic: "Output
   * blocked by content filtering policy"). `completion`: the answer is cut by a `content_filter` finish (Anthropic:
   * stop reason `refusal`).
   */
  | ({ kind: 'content_filtered'; during?: 'prompt' | 'completion'; category?: string } & Answer)
  /** A normal stream with garbage written before every content event; a non-streaming answer that is not JSON. */
  | ({ kind: 'malformed_sse'; garbage?: string[] } & Answer);

export interface Attempt {
  /** Position since the fake started or was last reset. */
  index: number;
  /** `Date.now()` when the request arrived. */
  at: number;
  method: string;
  /** Path and query. */
  path: string;
  /** Undefined for a path the fake does not serve (answered 404). */
  wire?: Wire;
  route?: 'chat' | 'embeddings';
  deployment?: string;
  apiVersion?: string;
  /** Lower-case names. */
  headers: Record<string, string>;
  /** From `Authorization: Bearer`, `api-key` or `x-api-key`. */
  key?: string;
  /** Parsed JSON, or the raw text when it was not JSON. */
  body: unknown;
  stream: boolean;
  /** The behaviour applied, or why the request was refused before any behaviour applied. */
  outcome: Behaviour['kind'] | 'not_found' | 'invalid_request' | 'prefill_rejected';
  /** The client closed the connection before the fake had finished answering (a timeout, an abort). */
  aborted: boolean;
}

export type Script = Behaviour | readonly Behaviour[] | ((attempt: Attempt) => Behaviour);

export interface FakeProvider {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Every request, in arrival order. */
  readonly attempts: Attempt[];
  /** Whether a trailing assistant message is continued (true) or rejected with 400 (false). */
  prefill: boolean;
  /** A behaviour for every request, a list used in order (the last one repeats), or a function of the attempt. */
  script(script: Script): void;
  /** Forgets attempts and goes back to answering normally, with the prefill setting it started with. */
  reset(): void;
  stop(): Promise<void>;
}

/** Down for `downMs` from the first request, then healthy; down again after `upMs` if given, and so on. */
export function flapping(options: { downMs: number; upMs?: number; down?: Behaviour; up?: Behaviour }): (attempt: Attempt) => Behaviour {
  let start: number | undefined;
  return (attempt) => {
    start ??= attempt.at;
    const elapsed = attempt.at - start;
    const phase = options.upMs === undefined ? elapsed : elapsed % (options.downMs + options.upMs);
    return phase < options.downMs ? (options.down ?? { kind: 'server_error' }) : (options.up ?? { kind: 'ok' });
  };
}

const DEFAULT_TEXT = 'Hello from the fake provider.';
/** Lines a tolerant reader skips: no colon, an unknown field, a comment, empty data, a stray blank line. */
export const DEFAULT_GARBAGE = ['garbage without a colon\n\n', 'x-unknown-field: 1\n\n', ': a comment\n\n', 'data:\n\n', '\r\n'];
const REQUEST_ID_HEADER: Record<Wire, string> = { openai: 'x-request-id', azure: 'apim-request-id', anthropic: 'request-id' };
const PREFILL_REFUSAL = 'This model does not support assistant message prefill. The conversation must end with a user message.';

// -------------------------------------------------------------------------------------------------------------
// Requests

interface Parsed {
  wire: Wire;
  route: 'chat' | 'embeddings';
  deployment?: string;
  apiVersion?: string;
}

function route(method: string, url: URL): Parsed | undefined {
  if (method !== 'POST') return undefined;
  if (url.pathname === '/v1/chat/completions') return { wire: 'openai', route: 'chat' };
  if (url.pathname === '/v1/embeddings') return { wire: 'openai', route: 'embeddings' };
  if (url.pathname === '/v1/messages') return { wire: 'anthropic', route: 'chat' };
  const azure = /^\/openai\/deployments\/([^/]+)\/(chat\/completions|embeddings)$/.exec(url.pathname);
  if (!azure) return undefined;
  const apiVersion = url.searchParams.get('api-version') ?? undefined;
  return { wire: 'azure', route: azure[2] === 'embeddings' ? 'embeddings' : 'chat', deployment: decodeURIComponent(azure[1] as string), ...(apiVersion === undefined ? {} : { apiVersion }) };
}

function headerRecord(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  return out;
}

function keyOf(headers: Record<string, string>): string | undefined {
  const bearer = /^Bearer (.+)$/i.exec(headers.authorization ?? '');
  return bearer?.[1] ?? headers['api-key'] ?? headers['x-api-key'];
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

type Json = Record<string, unknown>;
const asRecord = (value: unknown): Json => (typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : {});
const messagesOf = (body: Json): Json[] => (Array.isArray(body.messages) ? body.messages.map(asRecord) : []);

/** The text of a trailing assistant message: what a provider that supports prefills continues from. */
function prefillOf(body: Json): string | undefined {
  const last = messagesOf(body).at(-1);
  if (last?.role !== 'assistant') return undefined;
  if (typeof last.content === 'string') return last.content;
  if (!Array.isArray(last.content)) return '';
  return last.content
    .map(asRecord)
    .map((part) => (typeof part.text === 'string' ? part.text : ''))
    .join('');
}

// -------------------------------------------------------------------------------------------------------------
// Error bodies, per wire

interface Reply {
  status: number;
  headers?: Record<string, string>;
  body: unknown;
}

const openAIError = (message: string, type: string | null, code: string | null, param: string | null = null) => ({ error: { message, type, param, code } });
const anthropicError = (type: string, message: string) => ({ type: 'error', error: { type, message }, request_id: 'req_fake' });

/** Checks a real provider makes that a wrong adapter would trip over. */
function protocolError(parsed: Parsed, headers: Record<string, string>, body: Json): Reply | undefined {
  if (parsed.wire === 'azure' && parsed.apiVersion === undefined) return { status: 404, body: { error: { code: '404', message: 'Resource not found' } } };
  if (parsed.wire === 'anthropic') {
    if (headers['anthropic-version'] === undefined) return { status: 400, body: anthropicError('invalid_request_error', 'anthropic-version: header is required') };
    if (typeof body.max_tokens !== 'number') return { status: 400, body: anthropicError('invalid_request_error', 'max_tokens: Field required') };
    if (messagesOf(body).some((m) => m.role === 'system' || m.role === 'developer')) {
      return { status: 400, body: anthropicError('invalid_request_error', 'messages: Unexpected role "system". The Messages API accepts a top-level `system` parameter, not "system" as an input message role.') };
    }
    return undefined;
  }
  if (parsed.wire === 'openai' && typeof body.model !== 'string') return { status: 400, body: openAIError('you must provide a model parameter', 'invalid_request_error', null) };
  if (body.stream_options !== undefined && body.stream !== true) {
    return { status: 400, body: openAIError("The 'stream_options' parameter is only allowed when 'stream' is enabled.", 'invalid_request_error', null, 'stream_options') };
  }
  return undefined;
}

function retryHeaders(behaviour: { retryAfterSeconds?: number; retryAfterMs?: number }): Record<string, string> {
  return {
    ...(behaviour.retryAfterSeconds === undefined ? {} : { 'retry-after': String(behaviour.retryAfterSeconds) }),
    ...(behaviour.retryAfterMs === undefined ? {} : { 'retry-after-ms': String(behaviour.retryAfterMs) }),
  };
}

function filterResults(category?: string): Json {
  const results: Json = {};
  for (const name of ['hate', 'self_harm', 'sexual', 'violence']) results[name] = { filtered: name === category, severity: name === category ? 'high' : 'safe' };
  return results;
}

function failure(wire: Wire, behaviour: Behaviour, key: string | undefined): Reply | undefined {
  switch (behaviour.kind) {
    case 'rate_limited': {
      const headers = retryHeaders(behaviour);
      if (wire === 'anthropic') return { status: 429, headers: { ...headers, 'anthropic-ratelimit-requests-remaining': '0' }, body: anthropicError('rate_limit_error', 'Number of requests has exceeded your per-minute rate limit') };
      if (wire === 'azure') {
        const wait = behaviour.retryAfterSeconds === undefined ? '' : ` Please retry after ${behaviour.retryAfterSeconds} seconds.`;
        const message = `Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier.${wait} Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit.`;
        return { status: 429, headers, body: { error: { code: '429', message } } };
      }
      return { status: 429, headers: { ...headers, 'x-ratelimit-remaining-requests': '0' }, body: openAIError('Rate limit reached for requests per min (RPM): Limit 500, Used 500, Requested 1.', 'requests', 'rate_limit_exceeded') };
    }
    case 'quota_exhausted':
      if (wire === 'anthropic') return { status: 400, body: anthropicError('invalid_request_error', 'Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.') };
      return { status: 429, body: openAIError('You exceeded your current quota, please check your plan and billing details.', 'insufficient_quota', 'insufficient_quota') };
    case 'overloaded': {
      const status = behaviour.status ?? (wire === 'anthropic' ? 529 : 503);
      if (wire === 'anthropic') return { status, body: anthropicError('overloaded_error', 'Overloaded') };
      return { status, body: openAIError('The engine is currently overloaded, please try again later.', 'server_error', null) };
    }
    case 'server_error': {
      const status = behaviour.status ?? 500;
      if (wire === 'anthropic') return { status, body: anthropicError('api_error', 'Internal server error') };
      return { status, body: openAIError('The server had an error while processing your request. Sorry about that!', 'server_error', null) };
    }
    case 'auth_failed':
      if (wire === 'anthropic') return { status: 401, body: anthropicError('authentication_error', 'invalid x-api-key') };
      if (wire === 'azure') return { status: 401, body: { error: { code: '401', message: 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.' } } };
      return { status: 401, body: openAIError(`Incorrect API key provided: ${maskKey(key)}. You can find your API key at https://platform.openai.com/account/api-keys.`, 'invalid_request_error', 'invalid_api_key') };
    case 'context_length_exceeded':
      if (wire === 'anthropic') return { status: 400, body: anthropicError('invalid_request_error', 'prompt is too long: 208310 tokens > 200000 maximum') };
      return { status: 400, body: openAIError("This model's maximum context length is 128000 tokens. However, your messages resulted in 130412 tokens. Please reduce the length of the messages.", 'invalid_request_error', 'context_length_exceeded', 'messages') };
    case 'content_filtered':
      if (behaviour.during === 'completion') return undefined;
      if (wire === 'anthropic') return { status: 400, body: anthropicError('invalid_request_error', 'Output blocked by content filtering policy') };
      return {
        status: 400,
        body: {
          error: {
            message: "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.",
            type: null,
            param: 'prompt',
            code: 'content_filter',
            status: 400,
            innererror: { code: 'ResponsibleAIPolicyViolation', content_filter_result: filterResults(behaviour.category ?? 'violence') },
          },
        },
      };
    default:
      return undefined;
  }
}

/** OpenAI quotes a bad key back with all but its ends masked. */
function maskKey(key: string | undefined): string {
  return key === undefined ? '(none)' : `${key.slice(0, 3)}***${key.slice(-4)}`;
}

// -------------------------------------------------------------------------------------------------------------
// Answers

type Answering = Extract<Behaviour, Answer>;

interface Content {
  pieces: string[];
  tools: Required<ToolCallSpec>[];
  model: string;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  finish: NonNullable<Answer['finishReason']>;
  id: string;
}

function content(wire: Wire, parsed: Parsed, body: Json, behaviour: Answering, prefill: string | undefined, index: number): Content {
  let text = behaviour.text ?? DEFAULT_TEXT;
  // A provider that continues a prefill writes only what comes after it.
  if (prefill !== undefined && prefill !== '' && text.startsWith(prefill)) text = text.slice(prefill.length);
  const pieces = text.match(/\S*\s*/g)?.filter((piece) => piece !== '') ?? [];
  const tools = (behaviour.toolCalls ?? []).map((tool, i) => ({ ...tool, id: tool.id ?? (wire === 'anthropic' ? `toolu_fake${i}` : `call_fake${i}`) }));
  const prompt = behaviour.usage?.prompt_tokens ?? Math.ceil(JSON.stringify(body.messages ?? body.input ?? '').length / 4);
  const completion = behaviour.usage?.completion_tokens ?? pieces.length + tools.length;
  const filtered = behaviour.kind === 'content_filtered';
  return {
    pieces,
    tools,
    model: behaviour.model ?? (wire === 'azure' ? (parsed.deployment ?? 'azure-model') : typeof body.model === 'string' ? body.model : 'fake-model'),
    usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
    finish: behaviour.finishReason ?? (filtered ? 'content_filter' : tools.length > 0 ? 'tool_calls' : 'stop'),
    id: wire === 'anthropic' ? `msg_fake${index}` : `chatcmpl-fake${index}`,
  };
}

const STOP_REASONS = { stop: 'end_turn', length: 'max_tokens', tool_calls: 'tool_use', content_filter: 'refusal' } as const;

function completionBody(wire: Wire, c: Content, behaviour: Answering): unknown {
  const text = c.pieces.join('');
  if (wire === 'anthropic') {
    const blocks = [...(text === '' ? [] : [{ type: 'text', text }]), ...c.tools.map((t) => ({ type: 'tool_use', id: t.id, name: t.name, input: JSON.parse(t.arguments) as unknown }))];
    return { id: c.id, type: 'message', role: 'assistant', model: c.model, content: blocks, stop_reason: STOP_REASONS[c.finish], stop_sequence: null, usage: { input_tokens: c.usage.prompt_tokens, output_tokens: c.usage.completion_tokens } };
  }
  const toolCalls = c.tools.map((t) => ({ id: t.id, type: 'function', function: { name: t.name, arguments: t.arguments } }));
  const message = { role: 'assistant', content: text === '' && toolCalls.length > 0 ? null : text, refusal: null, ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}) };
  const azure = wire === 'azure' ? { content_filter_results: filterResults(behaviour.kind === 'content_filtered' ? (behaviour.category ?? 'violence') : undefined) } : {};
  return {
    id: c.id,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: c.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: c.finish, ...azure }],
    usage: c.usage,
    system_fingerprint: 'fp_fake',
    ...(wire === 'azure' ? { prompt_filter_results: [{ prompt_index: 0, content_filter_results: filterResults() }] } : {}),
  };
}

/** One frame of a stream; `content` frames carry text or tool calls and are what stalls and cuts count. */
interface Frame {
  text: string;
  content: boolean;
}

const dataFrame = (data: unknown, content = false): Frame => ({ text: `data: ${JSON.stringify(data)}\n\n`, content });
const eventFrame = (event: string, data: unknown, content = false): Frame => ({ text: `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`, content });

function halves(text: string): string[] {
  const middle = Math.ceil(text.length / 2);
  return [text.slice(0, middle), text.slice(middle)].filter((piece) => piece !== '');
}

function openAIFrames(wire: Wire, c: Content, body: Json, behaviour: Answering): Frame[] {
  const created = Math.floor(Date.now() / 1000);
  const includeUsage = asRecord(body.stream_options).include_usage === true;
  const filter = wire === 'azure' ? { content_filter_results: filterResults() } : {};
  const chunk = (delta: Json, finish: string | null = null, extra: Json = {}) => ({
    id: c.id,
    object: 'chat.completion.chunk',
    created,
    model: c.model,
    system_fingerprint: 'fp_fake',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish, ...extra }],
    ...(includeUsage ? { usage: null } : {}),
  });
  const frames: Frame[] = [];
  if (wire === 'azure') frames.push(dataFrame({ choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: [{ prompt_index: 0, content_filter_results: filterResults() }] }));
  frames.push(dataFrame(chunk({ role: 'assistant', content: '', refusal: null })));
  for (const piece of c.pieces) frames.push(dataFrame(chunk({ content: piece }, null, filter), true));
  c.tools.forEach((tool, index) => {
    frames.push(dataFrame(chunk({ tool_calls: [{ index, id: tool.id, type: 'function', function: { name: tool.name, arguments: '' } }] }), true));
    for (const piece of halves(tool.arguments)) frames.push(dataFrame(chunk({ tool_calls: [{ index, function: { arguments: piece } }] }), true));
  });
  const filtered = behaviour.kind === 'content_filtered' ? { content_filter_results: filterResults(behaviour.category ?? 'violence') } : filter;
  frames.push(dataFrame(chunk({}, c.finish, filtered)));
  if (includeUsage) frames.push(dataFrame({ id: c.id, object: 'chat.completion.chunk', created, model: c.model, system_fingerprint: 'fp_fake', choices: [], usage: c.usage }));
  frames.push({ text: 'data: [DONE]\n\n', content: false });
  return frames;
}

function anthropicFrames(c: Content): Frame[] {
  const frames: Frame[] = [
    eventFrame('message_start', {
      type: 'message_start',
      message: { id: c.id, type: 'message', role: 'assistant', model: c.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: c.usage.prompt_tokens, output_tokens: 1 } },
    }),
  ];
  let block = 0;
  if (c.pieces.length > 0) {
    frames.push(eventFrame('content_block_start', { type: 'content_block_start', index: block, content_block: { type: 'text', text: '' } }));
    frames.push(eventFrame('ping', { type: 'ping' }));
    for (const text of c.pieces) frames.push(eventFrame('content_block_delta', { type: 'content_block_delta', index: block, delta: { type: 'text_delta', text } }, true));
    frames.push(eventFrame('content_block_stop', { type: 'content_block_stop', index: block }));
    block++;
  }
  for (const tool of c.tools) {
    frames.push(eventFrame('content_block_start', { type: 'content_block_start', index: block, content_block: { type: 'tool_use', id: tool.id, name: tool.name, input: {} } }, true));
    for (const partial_json of halves(tool.arguments)) frames.push(eventFrame('content_block_delta', { type: 'content_block_delta', index: block, delta: { type: 'input_json_delta', partial_json } }, true));
    frames.push(eventFrame('content_block_stop', { type: 'content_block_stop', index: block }));
    block++;
  }
  frames.push(eventFrame('message_delta', { type: 'message_delta', delta: { stop_reason: STOP_REASONS[c.finish], stop_sequence: null }, usage: { output_tokens: c.usage.completion_tokens } }));
  frames.push(eventFrame('message_stop', { type: 'message_stop' }));
  return frames;
}

/** Garbage before every content frame, cycling through the list. */
function withGarbage(frames: Frame[], garbage: string[]): Frame[] {
  let next = 0;
  return frames.flatMap((frame) => (frame.content && garbage.length > 0 ? [{ text: garbage[next++ % garbage.length] as string, content: false }, frame] : [frame]));
}

/** The frame before which a stall or cut strikes: the (n+1)th content frame, or the one after the last. */
function faultIndex(frames: Frame[], afterChunks: number): number {
  let seen = 0;
  let last = -1;
  for (let i = 0; i < frames.length; i++) {
    if (!frames[i]?.content) continue;
    if (seen === afterChunks) return i;
    seen++;
    last = i;
  }
  return last + 1;
}

function embeddingsBody(body: Json, c: Content): unknown {
  const inputs = Array.isArray(body.input) ? body.input : [body.input];
  const dimensions = typeof body.dimensions === 'number' ? body.dimensions : 8;
  return {
    object: 'list',
    data: inputs.map((_, index) => ({ object: 'embedding', index, embedding: Array.from({ length: dimensions }, (__, d) => Math.sin(index + d + 1) / 2) })),
    model: c.model,
    usage: { prompt_tokens: c.usage.prompt_tokens, total_tokens: c.usage.prompt_tokens },
  };
}

// -------------------------------------------------------------------------------------------------------------
// The server

export async function startFakeProvider(options: { prefill?: boolean } = {}): Promise<FakeProvider> {
  const attempts: Attempt[] = [];
  let current: Script = { kind: 'ok' };
  let scripted = 0;
  let stopping = false;
  const inFlight = new Set<AbortController>();

  function behaviourFor(attempt: Attempt): Behaviour {
    if (typeof current === 'function') return current(attempt);
    if (!Array.isArray(current)) return current as Behaviour;
    const list = current as readonly Behaviour[];
    return list[Math.min(scripted++, list.length - 1)] ?? { kind: 'ok' };
  }

  const send = (res: ServerResponse, reply: Reply, extra: Record<string, string>) => {
    res.writeHead(reply.status, { 'content-type': 'application/json', ...extra, ...reply.headers });
    res.end(typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body));
  };

  /** What the handler and the connection's close listener share about one request. */
  interface Exchange {
    signal: AbortSignal;
    attempt?: Attempt;
    /** The fake broke the connection itself (a reset or a cut), so the client did not abort. */
    closedByUs: boolean;
  }

  async function handle(req: IncomingMessage, res: ServerResponse, exchange: Exchange): Promise<void> {
    const { signal } = exchange;
    const markClosedByUs = () => {
      exchange.closedByUs = true;
    };
    const at = Date.now();
    const url = new URL(req.url ?? '/', 'http://fake');
    const headers = headerRecord(req);
    const body = await readBody(req);
    const json = asRecord(body);
    const parsed = route(req.method ?? 'GET', url);
    const key = keyOf(headers);
    const attempt: Attempt = {
      index: attempts.length,
      at,
      method: req.method ?? 'GET',
      path: `${url.pathname}${url.search}`,
      ...(parsed ?? {}),
      headers,
      ...(key === undefined ? {} : { key }),
      body,
      stream: json.stream === true,
      outcome: 'not_found',
      aborted: false,
    };
    attempts.push(attempt);
    exchange.attempt = attempt;
    const requestId = { [REQUEST_ID_HEADER[parsed?.wire ?? 'openai']]: `req_fake${attempt.index}` };
    if (parsed === undefined) {
      send(res, { status: 404, body: openAIError(`Unknown request URL: ${req.method} ${url.pathname}.`, 'invalid_request_error', 'unknown_url') }, requestId);
      return;
    }
    const invalid = protocolError(parsed, headers, json);
    if (invalid !== undefined) {
      attempt.outcome = 'invalid_request';
      send(res, invalid, requestId);
      return;
    }
    const behaviour = behaviourFor(attempt);
    attempt.outcome = behaviour.kind;
    const failed = failure(parsed.wire, behaviour, key);
    if (failed !== undefined) {
      send(res, failed, requestId);
      return;
    }
    if (behaviour.kind === 'connection_reset') {
      markClosedByUs();
      req.socket.resetAndDestroy();
      return;
    }
    if (behaviour.kind === 'timeout') return;
    const answering = behaviour as Answering;
    const prefill = parsed.route === 'chat' ? prefillOf(json) : undefined;
    if (prefill !== undefined && !fake.prefill) {
      attempt.outcome = 'prefill_rejected';
      send(res, { status: 400, body: parsed.wire === 'anthropic' ? anthropicError('invalid_request_error', PREFILL_REFUSAL) : openAIError(PREFILL_REFUSAL, 'invalid_request_error', null, 'messages') }, requestId);
      return;
    }
    if (answering.delayMs !== undefined && answering.delayMs > 0) await sleep(answering.delayMs, undefined, { signal });
    const c = content(parsed.wire, parsed, json, answering, prefill, attempt.index);
    if (parsed.route === 'embeddings') {
      send(res, { status: 200, body: embeddingsBody(json, c) }, requestId);
      return;
    }
    if (!attempt.stream) {
      answerWhole(res, completionBody(parsed.wire, c, answering), answering, requestId, markClosedByUs);
      return;
    }
    let frames = parsed.wire === 'anthropic' ? anthropicFrames(c) : openAIFrames(parsed.wire, c, json, answering);
    if (answering.kind === 'malformed_sse') frames = withGarbage(frames, answering.garbage ?? DEFAULT_GARBAGE);
    const faultAt = answering.kind === 'stream_stall' || answering.kind === 'stream_cut' ? faultIndex(frames, answering.afterChunks) : frames.length;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...requestId });
    res.flushHeaders();
    for (let i = 0; i < faultAt; i++) {
      if (i > 0 && answering.chunkDelayMs !== undefined && answering.chunkDelayMs > 0) await sleep(answering.chunkDelayMs, undefined, { signal });
      if (signal.aborted) return;
      res.write((frames[i] as Frame).text);
    }
    if (answering.kind === 'stream_stall') return;
    if (answering.kind === 'stream_cut' && answering.how === 'destroy') {
      markClosedByUs();
      res.destroy();
      return;
    }
    res.end();
  }

  /** A whole JSON answer, or the non-streaming version of a stall, cut or malformed body. */
  function answerWhole(res: ServerResponse, body: unknown, behaviour: Answering, extra: Record<string, string>, markClosedByUs: () => void): void {
    const text = behaviour.kind === 'malformed_sse' ? 'this is not JSON' : JSON.stringify(body);
    if (behaviour.kind !== 'stream_stall' && behaviour.kind !== 'stream_cut') {
      send(res, { status: 200, body: text }, extra);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', ...extra });
    res.write(text.slice(0, Math.floor(text.length / 2)));
    if (behaviour.kind === 'stream_stall') return;
    if (behaviour.how === 'destroy') {
      markClosedByUs();
      res.destroy();
    } else res.end();
  }

  const server = createServer((req, res) => {
    const controller = new AbortController();
    const exchange: Exchange = { signal: controller.signal, closedByUs: false };
    inFlight.add(controller);
    // Writes racing a client that left fail here rather than as an unhandled 'error' event.
    res.on('error', () => undefined);
    res.on('close', () => {
      inFlight.delete(controller);
      controller.abort();
      if (exchange.attempt !== undefined && !res.writableFinished && !exchange.closedByUs && !stopping) exchange.attempt.aborted = true;
    });
    handle(req, res, exchange).catch(() => {
      // An aborted wait: the client went away, which the close listener has recorded.
      if (!res.destroyed) res.destroy();
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const fake: FakeProvider = {
    url: `http://127.0.0.1:${port}`,
    attempts,
    prefill: options.prefill ?? true,
    script(script) {
      current = script;
      scripted = 0;
    },
    reset() {
      attempts.length = 0;
      current = { kind: 'ok' };
      scripted = 0;
      fake.prefill = options.prefill ?? true;
    },
    async stop() {
      stopping = true;
      for (const controller of inFlight) controller.abort();
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
  return fake;
}
