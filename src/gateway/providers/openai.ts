/**
 * OpenAI's chat completions API. The gateway's canonical language is this API, so the adapter mostly passes things
 * through; what it must get right is the model (the target's, never the client's alias), usage in streams, and the
 * reading of error bodies, where one status (429) means two opposite things. Azure OpenAI and the OpenAI-compatible
 * servers reuse the functions exported here.
 */
import { retryAfterMs, type ErrorClass, type UpstreamError } from '../errors.js';
import type {
  ChatChunk,
  ChatCompletion,
  ChatRequest,
  DecodedEvent,
  EmbeddingsRequest,
  HttpRequest,
  SseEvent,
  StreamDecoder,
  Target,
  Usage,
} from '../types.js';
import type { ProviderAdapter } from './adapter.js';

export const OPENAI_BASE_URL = 'https://api.openai.com/v1';

/** Longest provider message kept in an error: enough to diagnose, not a whole HTML error page in every log line. */
const MAX_MESSAGE_LENGTH = 1000;

export type HeaderReader = { get(name: string): string | null };

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function joinURL(baseURL: string, path: string): string {
  return `${baseURL.replace(/\/+$/, '')}${path}`;
}

/**
 * The request body with the target's model. Streams always ask for usage, whatever the client asked: budgets and
 * cost need it. `stream_options` is dropped from non-streaming requests because OpenAI rejects it there.
 */
export function chatBody(request: ChatRequest, model: string | undefined): Record<string, unknown> {
  const { stream_options: streamOptions, ...rest } = request;
  const body: Record<string, unknown> = { ...rest };
  if (model === undefined) delete body.model;
  else body.model = model;
  if (request.stream === true) body.stream_options = { ...streamOptions, include_usage: true };
  return body;
}

export function jsonPost(url: string, headers: Record<string, string>, body: unknown): HttpRequest {
  return { url, method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) };
}

export function bearer(key: string | undefined): Record<string, string> {
  return key === undefined || key === '' ? {} : { authorization: `Bearer ${key}` };
}

/** Whether the client itself asked for the usage chunk; if not, the gateway consumes it without forwarding it. */
export function clientWantsUsage(request: ChatRequest): boolean {
  return request.stream_options?.include_usage === true;
}

function isUsage(value: unknown): value is Usage {
  return isRecord(value) && typeof value.prompt_tokens === 'number' && typeof value.completion_tokens === 'number';
}

/** A chat completion as OpenAI-shaped servers return it. Throws when the body is not one (an HTML page from a proxy). */
export function parseOpenAIChat(body: unknown, target: Target): ChatCompletion {
  if (!isRecord(body) || !Array.isArray(body.choices)) {
    throw new Error(`${target.provider.name}: the response is not a chat completion: ${truncate(JSON.stringify(body) ?? String(body))}`);
  }
  const completion = body as ChatCompletion;
  // Some self-hosted servers leave `model` out; the model we asked for is then the best answer there is.
  return typeof completion.model === 'string' && completion.model !== '' ? completion : { ...completion, model: target.model };
}

// -------------------------------------------------------------------------------------------------------------
// Errors

export interface ErrorDetails {
  message: string;
  code?: string;
  type?: string;
}

/**
 * The message, code and type of an error body in any of the OpenAI-like shapes: `{error: {message, type, code}}`
 * (OpenAI, Azure, Ollama, llama.cpp, whose `code` is the HTTP status as a number), vLLM's older top-level
 * `{object: "error", message, type, code}`, `{error: "text"}`, or raw text.
 */
export function errorDetails(body: unknown): ErrorDetails {
  if (!isRecord(body)) return { message: String(body ?? '').trim() || 'empty response body' };
  const inner = isRecord(body.error) ? body.error : body;
  const message = typeof inner.message === 'string' ? inner.message : typeof body.error === 'string' ? body.error : JSON.stringify(body);
  const code = asString(inner.code);
  const type = asString(inner.type);
  return { message, ...(code === undefined ? {} : { code }), ...(type === undefined ? {} : { type }) };
}

function asString(value: unknown): string | undefined {
  if (typeof value === 'string' && value !== '') return value;
  return typeof value === 'number' ? String(value) : undefined;
}

function truncate(text: string): string {
  return text.length > MAX_MESSAGE_LENGTH ? `${text.slice(0, MAX_MESSAGE_LENGTH)}…` : text;
}

/** The key never leaves the gateway, even when a provider quotes it back in an error message. */
function redact(message: string, key: string | undefined): string {
  return key === undefined || key.length < 4 ? message : message.split(key).join('[redacted]');
}

export function upstreamError(target: Target, errorClass: ErrorClass, status: number, details: ErrorDetails, headers: HeaderReader): UpstreamError {
  const retryAfter = retryAfterMs(headers) ?? hintedRetryMs(details.message);
  const code = details.code ?? details.type;
  return {
    class: errorClass,
    provider: target.provider.name,
    status,
    // Redacted before truncation, so a cut cannot leave part of the key behind.
    message: truncate(redact(details.message, target.key)),
    ...(code === undefined ? {} : { code }),
    ...(retryAfter === undefined ? {} : { retryAfterMs: retryAfter }),
  };
}

const GO_DURATION = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * The wait a provider states only in words, when no header carries it: OpenAI's "Please try again in 1.2s" (or
 * "20ms", "6m0s") and Azure's "Please retry after 59 seconds".
 */
export function hintedRetryMs(message: string): number | undefined {
  const azure = /retry after (\d+) seconds?/i.exec(message);
  if (azure) return Number(azure[1]) * 1000;
  const openai = /try again in ((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)/i.exec(message);
  if (!openai) return undefined;
  let total = 0;
  for (const [, amount, unit] of (openai[1] as string).matchAll(GO_DURATION)) total += Number(amount) * (UNIT_MS[unit as string] ?? 0);
  return Math.round(total);
}

const QUOTA_CODES = new Set(['insufficient_quota']);
// Only OpenAI's own wording: Azure's ordinary rate-limit message links to "aka.ms/oai/quotaincrease", so a bare
// "quota" would turn every Azure throttle into a 15-minute cooldown.
const QUOTA_MESSAGE = /exceeded your current quota/i;
const CONTEXT_CODES = new Set(['context_length_exceeded', 'exceed_context_size_error']);
// vLLM quotes OpenAI's old wording; llama.cpp says "exceeds the available context size".
const CONTEXT_MESSAGE = /maximum context length|context length exceeded|exceeds the available context size/i;
const CONTENT_FILTER_CODES = new Set(['content_filter', 'content_policy_violation']);
const AUTH_CODES = new Set(['invalid_api_key', 'authentication_error', 'permission_error']);
const RATE_LIMIT_CODES = new Set(['rate_limit_exceeded']);

/**
 * The error class of an OpenAI-shaped failure. The body's code decides before the status does, so the same rules
 * serve errors sent inside a stream, whose status is only a guess.
 */
export function classifyOpenAI(status: number, headers: HeaderReader, body: unknown, target: Target): UpstreamError {
  const details = errorDetails(body);
  return upstreamError(target, openAIErrorClass(status, details), status, details, headers);
}

function openAIErrorClass(status: number, { message, code, type }: ErrorDetails): ErrorClass {
  const has = (codes: Set<string>) => (code !== undefined && codes.has(code)) || (type !== undefined && codes.has(type));
  if (has(QUOTA_CODES) || (status === 429 && QUOTA_MESSAGE.test(message))) return 'quota_exhausted';
  if (status === 429 || has(RATE_LIMIT_CODES)) return 'rate_limited';
  if (status === 401 || status === 403 || has(AUTH_CODES)) return 'auth_failed';
  if (has(CONTEXT_CODES) || ((status === 400 || status === 413) && CONTEXT_MESSAGE.test(message))) return 'context_length_exceeded';
  if (has(CONTENT_FILTER_CODES)) return 'content_filtered';
  if (status === 503 || status === 529) return 'overloaded';
  if (status >= 400 && status < 500) return 'bad_request';
  return 'server_error';
}

// -------------------------------------------------------------------------------------------------------------
// Streams

/**
 * The HTTP status an error sent inside a 200 stream would have had: llama.cpp and vLLM put it in `code`; OpenAI's
 * in-stream errors are server-side. Classification reads the body's code first, so this is only the fallback.
 */
function streamErrorStatus(body: unknown): number {
  const { code, type } = errorDetails(body);
  const numeric = Number(code);
  if (Number.isInteger(numeric) && numeric >= 400 && numeric < 600) return numeric;
  return type === 'invalid_request_error' ? 400 : 500;
}

/** Data that is not JSON cannot be forwarded, and dropping it would corrupt the answer: a bad-gateway error. */
export function malformedEvent(data: string): DecodedEvent {
  return { kind: 'error', status: 502, body: `malformed stream event: ${truncate(data)}` };
}

/** The JSON object an event carries, or undefined when it carries something else. */
export function parseEventData(data: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(data);
    return isRecord(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/**
 * OpenAI chunks pass through unchanged. The usage-only chunk that closes a stream (empty `choices`) is captured for
 * billing and forwarded only if the client asked for it; `[DONE]` completes the stream; an `error` object, or an
 * `error` event (llama.cpp), is an error.
 */
export class OpenAIStreamDecoder implements StreamDecoder {
  private usage: Usage | undefined;

  constructor(private readonly forwardUsage: boolean) {}

  decode(event: SseEvent): DecodedEvent {
    const data = event.data;
    if (data === '[DONE]') return this.done();
    if (data.trim() === '') return { kind: 'ignore' };
    const parsed = parseEventData(data);
    if (parsed === undefined) return malformedEvent(data);
    if (event.event === 'error' || parsed.error !== undefined || parsed.object === 'error') {
      return { kind: 'error', status: streamErrorStatus(parsed), body: parsed };
    }
    return this.chunk(parsed as ChatChunk);
  }

  protected chunk(chunk: ChatChunk): DecodedEvent {
    if (isUsage(chunk.usage)) this.usage = chunk.usage;
    if (Array.isArray(chunk.choices) && chunk.choices.length > 0) return { kind: 'chunks', chunks: [chunk] };
    // No choices: the usage chunk, or an annotation such as Azure's prompt filter results.
    return isUsage(chunk.usage) && this.forwardUsage ? { kind: 'chunks', chunks: [chunk] } : { kind: 'ignore' };
  }

  protected done(): DecodedEvent {
    return this.usage === undefined ? { kind: 'done' } : { kind: 'done', usage: this.usage };
  }
}

// -------------------------------------------------------------------------------------------------------------
// The adapter

/** An adapter for anything that speaks OpenAI's wire format; only where it lives and how its streams end differ. */
export function openAIWireAdapter(
  type: 'openai' | 'openai-compatible',
  baseURL: (target: Target) => string,
  decoder: (wantsUsage: boolean) => StreamDecoder,
): ProviderAdapter {
  return {
    type,
    supportsPrefill: false,
    chatRequest: (request: ChatRequest, target: Target): HttpRequest =>
      jsonPost(joinURL(baseURL(target), '/chat/completions'), bearer(target.key), chatBody(request, target.model)),
    parseChat: parseOpenAIChat,
    streamDecoder: (_target: Target, request: ChatRequest): StreamDecoder => decoder(clientWantsUsage(request)),
    classify: classifyOpenAI,
    embeddingsRequest: (request: EmbeddingsRequest, target: Target): HttpRequest =>
      jsonPost(joinURL(baseURL(target), '/embeddings'), bearer(target.key), { ...request, model: target.model }),
  };
}

export const openai: ProviderAdapter = openAIWireAdapter(
  'openai',
  (target) => target.provider.baseURL ?? OPENAI_BASE_URL,
  (wantsUsage) => new OpenAIStreamDecoder(wantsUsage),
);
