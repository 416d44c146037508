/**
 * The streaming safety boundary, end to end. Before any content reaches the client a failure fails over
 * transparently. After content was sent, a cut or a stall is continued by the next provider (with the partial answer
 * as a prefill where the provider continues prefills, Anthropic; with an explicit instruction where it does not,
 * OpenAI and Azure) so the client reads one seamless answer; when nothing can continue it, the stream ends with an
 * error event and never with `[DONE]`. Garbage a provider writes into its stream never reaches the client.
 */
import { describe, expect, it } from '@jest/globals';
import { APIError, type OpenAI } from 'openai';
import { CONTINUE_INSTRUCTION } from '../../../src/gateway/continuation.js';
import type { Attempt } from '../../support/fake-provider.js';
import { metricValue } from '../../support/gateway.js';
import { ask, CLAUDE, e2eSuite, gatewayFor, GPT, resetFakes, TEXT, TIGHT, USER } from './fixtures.js';

const suite = e2eSuite();

async function start(overrides: Parameters<typeof gatewayFor>[1] = {}): Promise<OpenAI> {
  suite.gateway = await gatewayFor(suite.fakes, overrides);
  return suite.gateway.client();
}

interface RawStream {
  status: number;
  /** The `data:` payloads in order, `[DONE]` included. */
  data: string[];
  raw: string;
}

/** A streaming request with fetch, read to its end: what is on the wire, whatever the SDK would make of it. */
async function rawStream(body: Record<string, unknown> = {}): Promise<RawStream> {
  const response = await fetch(`${suite.gateway?.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'chat', messages: USER, stream: true, ...body }),
  });
  const raw = await response.text();
  const data = raw
    .split('\n')
    .filter((line) => line.startsWith('data: '))
    .map((line) => line.slice('data: '.length));
  return { status: response.status, data, raw };
}

type Chunk = { id: string; model: string; object: string; choices?: { delta: { content?: string } }[]; error?: unknown };

/** Every frame of a raw stream is well-formed: `data: <json>` events separated by blank lines, and at most one `[DONE]` at the end. */
function expectClean(stream: RawStream): Chunk[] {
  const frames = stream.raw.split('\n\n').filter((frame) => frame !== '');
  for (const frame of frames) expect(frame).toMatch(/^data: (\{.*\}|\[DONE\])$/);
  const done = stream.data.indexOf('[DONE]');
  if (done !== -1) expect(done).toBe(stream.data.length - 1);
  return stream.data.filter((d) => d !== '[DONE]').map((d) => JSON.parse(d) as Chunk);
}

const textOf = (chunks: Chunk[]) => chunks.map((c) => c.choices?.[0]?.delta.content ?? '').join('');
const lastMessage = (attempt: Attempt | undefined) => {
  const messages = (attempt?.body as { messages?: { role: string; content: unknown }[] } | undefined)?.messages ?? [];
  return messages.slice(-2);
};

describe('before any content: transparent failover', () => {
  it.each([
    ['a stream cut before its first token', { kind: 'stream_cut', afterChunks: 0, how: 'destroy' } as const],
    ['a stream that stalls before its first token', { kind: 'stream_stall', afterChunks: 0 } as const],
    ['a 500 inside a 200', { kind: 'server_error' } as const],
  ])('%s: the client reads one clean stream from the fallback', async (_name, behaviour) => {
    const client = await start({ retry: { maxAttempts: 1, baseDelayMs: 10, maxDelayMs: 200, budgetPercent: 100 }, timeouts: TIGHT });
    suite.fakes.openai.script(behaviour);
    const answer = await ask(client, true);
    expect(answer.text).toBe(TEXT);
    expect(answer.models).toEqual([CLAUDE]);
    expect(answer.headers.get('x-llmroute-provider')).toBe('anthropic');
    expect(suite.fakes.openai.attempts).toHaveLength(1);
    expect(suite.fakes.anthropic.attempts).toHaveLength(1);
    expect(answer.ms).toBeLessThan(1500);

    // On the wire: one stream, one id, no trace of the first attempt, one [DONE].
    resetFakes(suite.fakes);
    suite.fakes.openai.script(behaviour);
    const raw = await rawStream();
    expect(raw.status).toBe(200);
    const chunks = expectClean(raw);
    expect(raw.data.at(-1)).toBe('[DONE]');
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(textOf(chunks)).toBe(TEXT);
  });
});

describe('mid-stream continuation', () => {
  describe.each([
    // Paced like a model, so that what was written before a reset is on the wire when the connection breaks.
    ['a cut (connection reset)', { kind: 'stream_cut', afterChunks: 2, how: 'destroy', chunkDelayMs: 10 } as const],
    ['a cut (clean close without a terminator)', { kind: 'stream_cut', afterChunks: 2, how: 'end' } as const],
    ['a stall', { kind: 'stream_stall', afterChunks: 2 } as const],
  ])('after %s', (_name, fault) => {
    it('continues on a provider that accepts a prefill (Anthropic): one seamless answer', async () => {
      const client = await start({ timeouts: TIGHT });
      suite.fakes.openai.script(fault);
      const answer = await ask(client, true);
      // "Hello from " came from OpenAI, the rest from Claude continuing it.
      expect(answer.text).toBe(TEXT);
      expect(answer.headers.get('x-llmroute-provider')).toBe('openai');
      expect(suite.fakes.openai.attempts).toHaveLength(1);
      expect(suite.fakes.anthropic.attempts).toHaveLength(1);
      // The continuation request ends with the partial answer as an assistant prefill, no instruction.
      const [user, prefill] = lastMessage(suite.fakes.anthropic.attempts[0]);
      expect(user).toEqual({ role: 'user', content: [{ type: 'text', text: 'Say hello.' }] });
      expect(prefill?.role).toBe('assistant');
      const prefilled = (prefill?.content as { type: string; text: string }[])[0]?.text ?? '';
      // What reached the client before the fault (how much a reset lets through varies), trimmed as Anthropic wants it.
      expect(prefilled).toMatch(/^Hello( from)?$/);
      expect(JSON.stringify(suite.fakes.anthropic.attempts[0]?.body)).not.toContain('was cut off');
      expect(answer.ms).toBeLessThan(1500);
    });

    it('continues on a provider without prefills (OpenAI) by instruction: one seamless answer', async () => {
      const client = await start({ chain: [{ provider: 'anthropic', model: CLAUDE }, { provider: 'openai' }], timeouts: TIGHT });
      suite.fakes.anthropic.script(fault);
      // What a model that follows the instruction writes: the rest, and only the rest.
      suite.fakes.openai.script((attempt) => {
        const partial = lastMessage(attempt)[0]?.content;
        return { kind: 'ok', text: typeof partial === 'string' && TEXT.startsWith(partial) ? TEXT.slice(partial.length) : 'NOT A CONTINUATION' };
      });
      const answer = await ask(client, true);
      expect(answer.text).toBe(TEXT);
      expect(suite.fakes.anthropic.attempts).toHaveLength(1);
      expect(suite.fakes.openai.attempts).toHaveLength(1);
      const [assistant, instruction] = lastMessage(suite.fakes.openai.attempts[0]);
      expect(assistant?.role).toBe('assistant');
      expect(assistant?.content).toMatch(/^Hello (from )?$/);
      expect(instruction).toEqual({ role: 'user', content: CONTINUE_INSTRUCTION });
      // Each chunk names the model that wrote it.
      expect(answer.models).toEqual([CLAUDE, GPT]);
    });
  });

  it('non-streaming: a cut answer is started over (nothing reached the client), not continued', async () => {
    const client = await start();
    suite.fakes.openai.script({ kind: 'stream_cut', afterChunks: 2, how: 'destroy', chunkDelayMs: 10 });
    const answer = await ask(client, false);
    expect(answer.text).toBe(TEXT);
    expect(answer.models).toEqual([CLAUDE]);
    expect(lastMessage(suite.fakes.anthropic.attempts[0]).at(-1)?.role).toBe('user');
  });

  it('when nothing can continue the answer: the SDK raises an APIError mid-iteration and [DONE] never arrives', async () => {
    const client = await start({ retry: { maxAttempts: 1, baseDelayMs: 10, maxDelayMs: 200, budgetPercent: 100 } });
    const failEverywhere = () => {
      suite.fakes.openai.script({ kind: 'stream_cut', afterChunks: 2, how: 'end' });
      suite.fakes.anthropic.script({ kind: 'server_error' });
      suite.fakes.azure.script({ kind: 'overloaded' });
    };
    failEverywhere();
    const started = Date.now();
    const stream = await client.chat.completions.create({ model: 'chat', messages: USER, stream: true });
    let text = '';
    let caught: unknown;
    try {
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(APIError);
    expect((caught as APIError).message).toContain('the answer was cut off and could not be continued');
    expect((caught as APIError).message).toContain('provider "azure"');
    // The client got the partial answer, and was told it is partial.
    expect(text).toBe('Hello from ');
    expect(suite.fakes.anthropic.attempts).toHaveLength(1);
    expect(suite.fakes.azure.attempts).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(1500);

    resetFakes(suite.fakes);
    failEverywhere();
    const raw = await rawStream();
    expect(raw.status).toBe(200);
    const chunks = expectClean(raw);
    expect(raw.data).not.toContain('[DONE]');
    expect(raw.raw).not.toContain('[DONE]');
    expect(chunks.at(-1)?.error).toMatchObject({ type: 'server_error' });
    expect(textOf(chunks)).toBe('Hello from ');
  });

  it('a stall after content with no provider left: an error event after the idle limit, no [DONE]', async () => {
    await start({ chain: [{ provider: 'openai' }], timeouts: TIGHT });
    suite.fakes.openai.script({ kind: 'stream_stall', afterChunks: 3 });
    const started = Date.now();
    const raw = await rawStream();
    const ms = Date.now() - started;
    const chunks = expectClean(raw);
    expect(textOf(chunks)).toBe('Hello from the ');
    expect(raw.raw).not.toContain('[DONE]');
    expect(JSON.stringify(chunks.at(-1)?.error)).toContain('no new tokens from provider');
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(1200);
  });
});

describe('malformed events from a provider', () => {
  it('unreadable lines are dropped and counted: the client reads a clean stream', async () => {
    const client = await start();
    suite.fakes.openai.script({ kind: 'malformed_sse' });
    const answer = await ask(client, true);
    expect(answer.text).toBe(TEXT);
    expect(answer.headers.get('x-llmroute-provider')).toBe('openai');

    suite.fakes.openai.script({ kind: 'malformed_sse' });
    const raw = await rawStream();
    const chunks = expectClean(raw);
    expect(textOf(chunks)).toBe(TEXT);
    expect(raw.raw).not.toMatch(/garbage|x-unknown-field|a comment/);
    expect(raw.data.at(-1)).toBe('[DONE]');
    // Two lines of each stream's garbage are unreadable (no colon, an unknown field); the rest are legal SSE.
    expect(metricValue(await suite.gateway!.scrape(), 'llmroute_malformed_events_total', { provider: 'openai' })).toBeGreaterThan(0);
  });

  it('an event whose data is not JSON is never forwarded: the attempt fails and the fallback answers', async () => {
    await start({ retry: { maxAttempts: 1, baseDelayMs: 10, maxDelayMs: 200, budgetPercent: 100 } });
    suite.fakes.openai.script({ kind: 'malformed_sse', garbage: ['data: {"choices": [{"delta": {"content": "GARBAGE\n\n'] });
    const raw = await rawStream();
    const chunks = expectClean(raw);
    expect(raw.raw).not.toContain('GARBAGE');
    expect(textOf(chunks)).toBe(TEXT);
    expect(chunks[0]?.model).toBe(CLAUDE);
    expect(suite.fakes.openai.attempts).toHaveLength(1);
  });

  it('non-streaming: garbage in the provider stream never reaches the answer', async () => {
    const client = await start();
    suite.fakes.openai.script({ kind: 'malformed_sse' });
    const answer = await ask(client, false);
    expect(answer.text).toBe(TEXT);
    expect(answer.models).toEqual([GPT]);
  });
});

describe('the end of a stream', () => {
  it('a provider slow to close after its finish reason: the answer is complete, not continued', async () => {
    const client = await start({ timeouts: { firstTokenSeconds: 2, idleSeconds: 0.3 } });
    // 200 ms between frames: the finish chunk, the usage chunk and [DONE] come 200, 400 and 600 ms after the one
    // content chunk, past the 0.3 s idle limit; the answer was nonetheless complete with the finish reason.
    suite.fakes.openai.script({ kind: 'ok', text: 'Hello.', chunkDelayMs: 200 });
    const answer = await ask(client, true);
    expect(answer.text).toBe('Hello.');
    expect(answer.headers.get('x-llmroute-provider')).toBe('openai');
    expect(suite.fakes.anthropic.attempts).toHaveLength(0);
    expect(suite.fakes.azure.attempts).toHaveLength(0);
  });
});
