/**
 * The built-in `mock` provider: an in-process stand-in for an OpenAI-compatible server, for local runs (the
 * quickstart) and failover drills. It answers in OpenAI's wire format, after `latencyMs`, and fails `failureRatio` of
 * requests the way `failureKind` says, so the gateway's failure handling is exercised exactly as in production.
 */
import type { MockSettings } from '../../api/schema.js';
import type { Transport, UpstreamResponse } from '../transport.js';
import type { HttpRequest } from '../types.js';
import type { z } from 'zod';

type Settings = z.output<typeof MockSettings>;

const encoder = new TextEncoder();
/** Delay between streamed chunks: enough to look like a model, short enough for tests. */
const CHUNK_INTERVAL_MS = 5;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

function response(status: number, body: AsyncIterable<Uint8Array>, headers: Record<string, string> = {}): UpstreamResponse {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return {
    status,
    headers: { get: (name) => lower[name.toLowerCase()] ?? null },
    body,
    async text() {
      const parts: Uint8Array[] = [];
      for await (const part of body) parts.push(part);
      return Buffer.concat(parts).toString('utf8');
    },
    discard() {},
  };
}

async function* once(text: string): AsyncIterable<Uint8Array> {
  yield encoder.encode(text);
}

const json = (status: number, value: unknown, headers: Record<string, string> = {}) => response(status, once(JSON.stringify(value)), { 'content-type': 'application/json', ...headers });
const error = (status: number, message: string, type: string, code: string | null, headers: Record<string, string> = {}) => json(status, { error: { message, type, param: null, code } }, headers);

function lastUserText(body: { messages?: { role: string; content: unknown }[] }): string {
  const last = [...(body.messages ?? [])].reverse().find((m) => m.role === 'user');
  const content = typeof last?.content === 'string' ? last.content : Array.isArray(last?.content) ? last.content.map((p: { text?: string }) => p.text ?? '').join(' ') : '';
  return content.length > 60 ? `${content.slice(0, 57)}...` : content;
}

/** Roughly four characters a token: the mock's usage is an estimate and says nothing about real tokenizers. */
const estimateTokens = (text: string) => Math.max(1, Math.ceil(text.length / 4));

export class MockTransport implements Transport {
  constructor(
    private readonly provider: string,
    private readonly settings: Settings,
    private readonly random: () => number = Math.random,
  ) {}

  async send(request: HttpRequest, signal: AbortSignal): Promise<UpstreamResponse> {
    const body = JSON.parse(request.body ?? '{}') as { model: string; stream?: boolean; messages?: { role: string; content: unknown }[]; input?: unknown };
    await sleep(this.settings.latencyMs, signal);
    const fails = this.random() < this.settings.failureRatio;
    if (fails) {
      const failed = await this.fail(body.stream === true, body.model, signal);
      if (failed) return failed;
    }
    if (request.url.endsWith('/embeddings')) {
      const inputs = Array.isArray(body.input) ? body.input : [body.input];
      return json(200, { object: 'list', model: body.model, data: inputs.map((_, index) => ({ object: 'embedding', index, embedding: [0.1, 0.2, 0.3] })), usage: { prompt_tokens: inputs.length, total_tokens: inputs.length } });
    }
    const text = `Mock answer from provider "${this.provider}" (${body.model}) to: ${lastUserText(body)}`;
    const promptTokens = estimateTokens(JSON.stringify(body.messages ?? []));
    const usage = { prompt_tokens: promptTokens, completion_tokens: estimateTokens(text), total_tokens: promptTokens + estimateTokens(text) };
    const id = `chatcmpl-mock-${Math.floor(this.random() * 1e12).toString(36)}`;
    const created = Math.floor(Date.now() / 1000);
    if (!body.stream) {
      return json(200, { id, object: 'chat.completion', created, model: body.model, choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }], usage });
    }
    return response(200, this.stream(id, created, body.model, text, usage, signal, 'complete'), { 'content-type': 'text/event-stream' });
  }

  /** A failure of the configured kind; undefined for the streaming kinds, which fail inside a 200 stream instead. */
  private async fail(stream: boolean, model: string, signal: AbortSignal): Promise<UpstreamResponse | undefined> {
    switch (this.settings.failureKind) {
      case 'rate-limited':
        return error(429, 'Rate limit reached for requests (mock)', 'requests', 'rate_limit_exceeded', { 'retry-after-ms': '200' });
      case 'quota-exhausted':
        return error(429, 'You exceeded your current quota (mock)', 'insufficient_quota', 'insufficient_quota');
      case 'overloaded':
        return error(503, 'The engine is currently overloaded (mock)', 'server_error', null);
      case 'server-error':
        return error(500, 'The server had an error while processing your request (mock)', 'server_error', null);
      case 'auth-failed':
        return error(401, 'Incorrect API key provided (mock)', 'invalid_request_error', 'invalid_api_key');
      case 'connection-reset':
        throw Object.assign(new Error('socket hang up (mock connection reset)'), { code: 'ECONNRESET' });
      case 'timeout':
        // Never answers; the gateway's first-token timeout must end it.
        await sleep(24 * 3_600_000, signal);
        return undefined;
      case 'stream-stall':
      case 'stream-cut': {
        const created = Math.floor(Date.now() / 1000);
        const text = 'This answer will not be finished by the mock provider because it was told to fail';
        const usage = { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 };
        const how = this.settings.failureKind === 'stream-stall' ? 'stall' : 'cut';
        if (!stream) {
          if (how === 'stall') await sleep(24 * 3_600_000, signal);
          throw Object.assign(new Error('socket hang up (mock stream cut)'), { code: 'ECONNRESET' });
        }
        return response(200, this.stream(`chatcmpl-mock-fail`, created, model, text, usage, signal, how), { 'content-type': 'text/event-stream' });
      }
    }
  }

  private async *stream(id: string, created: number, model: string, text: string, usage: object, signal: AbortSignal, ending: 'complete' | 'stall' | 'cut'): AsyncIterable<Uint8Array> {
    const words = text.split(/(?<= )/);
    const cutAt = ending === 'complete' ? words.length : Math.ceil(words.length / 2);
    const chunk = (delta: object, finish: string | null) => encoder.encode(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`);
    yield chunk({ role: 'assistant', content: '' }, null);
    for (const word of words.slice(0, cutAt)) {
      await sleep(CHUNK_INTERVAL_MS, signal);
      yield chunk({ content: word }, null);
    }
    if (ending === 'stall') await sleep(24 * 3_600_000, signal);
    if (ending === 'cut') return;
    yield chunk({}, 'stop');
    yield encoder.encode(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [], usage })}\n\n`);
    yield encoder.encode('data: [DONE]\n\n');
  }

  async close(): Promise<void> {}
}
