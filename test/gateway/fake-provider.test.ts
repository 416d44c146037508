import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CompiledProvider } from '../../src/api/gateway-config.js';
import type { ProviderAdapter } from '../../src/gateway/providers/adapter.js';
import { ADAPTERS } from '../../src/gateway/providers/index.js';
import type { CompatibleStreamDecoder } from '../../src/gateway/providers/openai-compatible.js';
import { SseParser } from '../../src/gateway/sse.js';
import type { ChatChunk, ChatRequest, DecodedEvent, HttpRequest, SseEvent, Target } from '../../src/gateway/types.js';
import { DEFAULT_GARBAGE, flapping, startFakeProvider, type Attempt, type FakeProvider } from '../support/fake-provider.js';
import { waitFor } from '../support/poll.js';

let fake: FakeProvider;
beforeAll(async () => {
  fake = await startFakeProvider();
});
afterEach(() => fake.reset());
afterAll(() => fake.stop());

const TEXT = 'Hello from the fake provider.';
const OPENAI = '/v1/chat/completions';
const AZURE = '/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21';
const ANTHROPIC = '/v1/messages';
const ANTHROPIC_HEADERS = { 'x-api-key': 'sk-ant-key', 'anthropic-version': '2023-06-01' };

const chat = (extra: Record<string, unknown> = {}) => ({ model: 'gpt-4o-2024-08-06', messages: [{ role: 'user', content: 'Hi' }], ...extra });
const claude = (extra: Record<string, unknown> = {}) => ({ model: 'claude-sonnet-4-20250514', max_tokens: 100, messages: [{ role: 'user', content: 'Hi' }], ...extra });

function post(path: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
  return fetch(`${fake.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), ...(signal ? { signal } : {}) });
}

function parse(text: string): SseEvent[] {
  const parser = new SseParser();
  return [...parser.push(text), ...parser.end()];
}

/** The data of OpenAI-style frames, `[DONE]` excluded. */
const openAIChunks = (text: string) =>
  parse(text)
    .filter((e) => e.data !== '[DONE]' && e.data !== '')
    .map((e) => JSON.parse(e.data) as ChatChunk);
const contentOf = (chunks: ChatChunk[]) => chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');

const until = (condition: () => boolean, message: string) => waitFor(condition, { message, intervalMs: 10, timeoutMs: 2000 });

/** Reads a body until it ends or stays silent for `quietMs`; reports which. */
async function readUntilQuiet(response: Response, quietMs: number): Promise<{ text: string; ended: boolean }> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  for (;;) {
    const timer = new AbortController();
    const next = await Promise.race([reader.read(), sleep(quietMs, 'quiet' as const, { signal: timer.signal })]);
    timer.abort();
    if (next === 'quiet') {
      await reader.cancel();
      return { text, ended: false };
    }
    if (next.done) return { text, ended: true };
    text += decoder.decode(next.value, { stream: true });
  }
}

describe('fake provider: normal answers', () => {
  it('answers an OpenAI chat completion and records the attempt with its key and body', async () => {
    const response = await post(OPENAI, chat(), { authorization: 'Bearer sk-test-1' });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { model: string; object: string; choices: { message: { content: string }; finish_reason: string }[]; usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } };
    expect(body).toMatchObject({ object: 'chat.completion', model: 'gpt-4o-2024-08-06', choices: [{ message: { role: 'assistant', content: TEXT }, finish_reason: 'stop' }] });
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
    expect(fake.attempts).toEqual([
      expect.objectContaining({ index: 0, method: 'POST', path: OPENAI, wire: 'openai', route: 'chat', key: 'sk-test-1', body: chat(), stream: false, outcome: 'ok', aborted: false }),
    ]);
    expect(fake.attempts[0]?.headers.authorization).toBe('Bearer sk-test-1');
  });

  it('streams OpenAI chunks as `data:` frames ending with [DONE], with usage when asked', async () => {
    const text = await (await post(OPENAI, chat({ stream: true, stream_options: { include_usage: true } }))).text();
    expect(text).toMatch(/^data: \{/);
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(text).not.toContain('event:');
    expect(text.split('\n\n').filter(Boolean).every((frame) => /^data: [^\n]+$/.test(frame))).toBe(true);
    const chunks = openAIChunks(text);
    expect(contentOf(chunks)).toBe(TEXT);
    expect(chunks[0]?.choices[0]?.delta).toMatchObject({ role: 'assistant', content: '' });
    expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe('stop');
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { completion_tokens: 5 } });
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
  });

  it('sends no usage chunk, and no usage fields, when the stream did not ask for usage', async () => {
    const chunks = openAIChunks(await (await post(OPENAI, chat({ stream: true }))).text());
    expect(chunks.every((c) => c.choices.length === 1 && !('usage' in c))).toBe(true);
  });

  it('streams tool calls as OpenAI deltas and answers them whole', async () => {
    fake.script({ kind: 'ok', text: '', toolCalls: [{ name: 'get_weather', arguments: '{"city":"Paris"}' }], usage: { prompt_tokens: 50, completion_tokens: 12 }, model: 'gpt-4o-2024-11-20' });
    const chunks = openAIChunks(await (await post(OPENAI, chat({ stream: true }))).text());
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls[0]).toEqual({ index: 0, id: 'call_fake0', type: 'function', function: { name: 'get_weather', arguments: '' } });
    expect(calls.map((c) => c.function?.arguments).join('')).toBe('{"city":"Paris"}');
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('tool_calls');
    expect(chunks[0]?.model).toBe('gpt-4o-2024-11-20');

    const whole = (await (await post(OPENAI, chat())).json()) as { choices: { message: unknown }[]; usage: unknown };
    expect(whole.choices[0]?.message).toEqual({ role: 'assistant', content: null, refusal: null, tool_calls: [{ id: 'call_fake0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] });
    expect(whole.usage).toEqual({ prompt_tokens: 50, completion_tokens: 12, total_tokens: 62 });
  });

  it('serves Azure deployments with api-key, filter annotations and the deployment as default model', async () => {
    const text = await (await post(AZURE, { messages: [{ role: 'user', content: 'Hi' }], stream: true }, { 'api-key': 'azure-key' })).text();
    const chunks = openAIChunks(text);
    expect(chunks[0]).toMatchObject({ choices: [], id: '', model: '', prompt_filter_results: [{ prompt_index: 0 }] });
    expect(chunks[1]?.model).toBe('gpt4o-prod');
    expect(chunks[2]?.choices[0]).toHaveProperty('content_filter_results');
    expect(contentOf(chunks)).toBe(TEXT);
    expect(fake.attempts[0]).toMatchObject({ wire: 'azure', deployment: 'gpt4o-prod', apiVersion: '2024-10-21', key: 'azure-key' });
  });

  it('refuses an Azure request without api-version, as Azure does', async () => {
    const response = await post('/openai/deployments/gpt4o-prod/chat/completions', { messages: [] });
    expect(response.status).toBe(404);
    expect(fake.attempts[0]?.outcome).toBe('invalid_request');
  });

  it('streams Anthropic events, each an `event:` line and a `data:` line of the same type', async () => {
    const text = await (await post(ANTHROPIC, claude({ stream: true }), ANTHROPIC_HEADERS)).text();
    const frames = text.split('\n\n').filter(Boolean);
    expect(frames.every((frame) => /^event: (\w+)\ndata: \{"type":"\1"/.test(frame))).toBe(true);
    const events = parse(text);
    expect(events.map((e) => e.event)).toEqual([
      'message_start',
      'content_block_start',
      'ping',
      ...Array<string>(5).fill('content_block_delta'),
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    const deltas = events.filter((e) => e.event === 'content_block_delta').map((e) => (JSON.parse(e.data) as { delta: { text: string } }).delta.text);
    expect(deltas.join('')).toBe(TEXT);
    expect(fake.attempts[0]).toMatchObject({ wire: 'anthropic', key: 'sk-ant-key', stream: true });
  });

  it('answers a whole Anthropic message with tool_use blocks', async () => {
    fake.script({ kind: 'ok', text: 'Checking.', toolCalls: [{ name: 'get_weather', arguments: '{"city":"Rome"}' }] });
    const body = await (await post(ANTHROPIC, claude(), ANTHROPIC_HEADERS)).json();
    expect(body).toMatchObject({
      type: 'message',
      model: 'claude-sonnet-4-20250514',
      content: [{ type: 'text', text: 'Checking.' }, { type: 'tool_use', id: 'toolu_fake0', name: 'get_weather', input: { city: 'Rome' } }],
      stop_reason: 'tool_use',
    });
  });

  it('enforces what Anthropic enforces: the version header, max_tokens, no system role in messages', async () => {
    const refused = async (body: unknown, headers: Record<string, string>) => {
      const response = await post(ANTHROPIC, body, headers);
      return { status: response.status, message: ((await response.json()) as { error: { message: string } }).error.message };
    };
    expect(await refused(claude(), { 'x-api-key': 'k' })).toEqual({ status: 400, message: 'anthropic-version: header is required' });
    expect(await refused({ ...claude(), max_tokens: undefined }, ANTHROPIC_HEADERS)).toEqual({ status: 400, message: 'max_tokens: Field required' });
    expect((await refused(claude({ messages: [{ role: 'system', content: 'x' }] }), ANTHROPIC_HEADERS)).message).toMatch(/Unexpected role "system"/);
  });

  it("enforces OpenAI's refusal of stream_options without stream", async () => {
    const response = await post(OPENAI, chat({ stream_options: { include_usage: true } }));
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { param: string } }).error.param).toBe('stream_options');
  });

  it('answers embeddings, one vector per input', async () => {
    const body = (await (await post('/v1/embeddings', { model: 'text-embedding-3-small', input: ['a', 'b'], dimensions: 4 })).json()) as { data: { index: number; embedding: number[] }[]; model: string };
    expect(body.model).toBe('text-embedding-3-small');
    expect(body.data.map((d) => [d.index, d.embedding.length])).toEqual([
      [0, 4],
      [1, 4],
    ]);
  });

  it('answers unknown paths with 404 and records them', async () => {
    expect((await post('/v2/chat', {})).status).toBe(404);
    expect(fake.attempts[0]).toMatchObject({ path: '/v2/chat', outcome: 'not_found' });
    expect(fake.attempts[0]).not.toHaveProperty('wire');
  });

  it('waits delayMs before the first byte and chunkDelayMs between events', async () => {
    fake.script({ kind: 'ok', text: 'a b c', delayMs: 150, chunkDelayMs: 40 });
    const started = Date.now();
    const response = await post(OPENAI, chat({ stream: true }));
    const firstByte = Date.now() - started;
    await response.text();
    const total = Date.now() - started;
    expect(firstByte).toBeGreaterThanOrEqual(140);
    // Six frames: role, three words, finish, [DONE]: five gaps.
    expect(total - firstByte).toBeGreaterThanOrEqual(5 * 40 - 20);
  });
});

describe('fake provider: failures', () => {
  it('rate-limits with retry-after and retry-after-ms, in each wire format', async () => {
    fake.script({ kind: 'rate_limited', retryAfterSeconds: 2, retryAfterMs: 1500 });
    const openai = await post(OPENAI, chat());
    expect(openai.status).toBe(429);
    expect([openai.headers.get('retry-after'), openai.headers.get('retry-after-ms')]).toEqual(['2', '1500']);
    expect(await openai.json()).toMatchObject({ error: { code: 'rate_limit_exceeded', type: 'requests' } });
    expect(await (await post(AZURE, { messages: [] })).json()).toMatchObject({ error: { code: '429', message: expect.stringContaining('Please retry after 2 seconds.') } });
    expect(await (await post(ANTHROPIC, claude(), ANTHROPIC_HEADERS)).json()).toMatchObject({ type: 'error', error: { type: 'rate_limit_error' } });
  });

  it('sends no retry headers unless asked', async () => {
    fake.script({ kind: 'rate_limited' });
    const response = await post(OPENAI, chat());
    expect([response.headers.get('retry-after'), response.headers.get('retry-after-ms')]).toEqual([null, null]);
  });

  it('exhausts quota as 429 insufficient_quota, or as Anthropic credit balance', async () => {
    fake.script({ kind: 'quota_exhausted' });
    const openai = await post(OPENAI, chat());
    expect([openai.status, await openai.json()]).toEqual([429, expect.objectContaining({ error: expect.objectContaining({ code: 'insufficient_quota' }) })]);
    const anthropic = await post(ANTHROPIC, claude(), ANTHROPIC_HEADERS);
    expect([anthropic.status, await anthropic.json()]).toEqual([400, expect.objectContaining({ error: expect.objectContaining({ message: expect.stringContaining('credit balance is too low') }) })]);
  });

  it('overloads with 503, or 529 for Anthropic, and fails with the server status asked for', async () => {
    fake.script({ kind: 'overloaded' });
    expect((await post(OPENAI, chat())).status).toBe(503);
    const anthropic = await post(ANTHROPIC, claude(), ANTHROPIC_HEADERS);
    expect([anthropic.status, await anthropic.json()]).toEqual([529, expect.objectContaining({ error: { type: 'overloaded_error', message: 'Overloaded' } })]);
    fake.script({ kind: 'overloaded', status: 529 });
    expect((await post(OPENAI, chat())).status).toBe(529);
    fake.script([{ kind: 'server_error' }, { kind: 'server_error', status: 502 }]);
    expect((await post(OPENAI, chat())).status).toBe(500);
    expect((await post(OPENAI, chat())).status).toBe(502);
  });

  it('refuses a bad key, quoting it masked as OpenAI does', async () => {
    fake.script({ kind: 'auth_failed' });
    const response = await post(OPENAI, chat(), { authorization: 'Bearer sk-proj-secret-9876' });
    expect(response.status).toBe(401);
    const { error } = (await response.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe('invalid_api_key');
    expect(error.message).toContain('sk-***9876');
    expect(error.message).not.toContain('secret');
    expect((await post(AZURE, { messages: [] }, { 'api-key': 'x' })).status).toBe(401);
  });

  it('refuses an over-long prompt in each wire format', async () => {
    fake.script({ kind: 'context_length_exceeded' });
    expect(await (await post(OPENAI, chat())).json()).toMatchObject({ error: { code: 'context_length_exceeded' } });
    expect(await (await post(ANTHROPIC, claude(), ANTHROPIC_HEADERS)).json()).toMatchObject({ error: { message: expect.stringMatching(/^prompt is too long/) } });
  });

  it("filters a prompt with Azure's 400 and innererror", async () => {
    fake.script({ kind: 'content_filtered', category: 'hate' });
    const response = await post(AZURE, { messages: [] });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: 'content_filter', innererror: { code: 'ResponsibleAIPolicyViolation', content_filter_result: { hate: { filtered: true, severity: 'high' }, violence: { filtered: false } } } } });
  });

  it('filters a completion mid-stream with a content_filter finish, or an Anthropic refusal', async () => {
    fake.script({ kind: 'content_filtered', during: 'completion', text: 'Here is how' });
    const chunks = openAIChunks(await (await post(AZURE, { messages: [], stream: true })).text());
    expect(chunks.at(-1)?.choices[0]).toMatchObject({ finish_reason: 'content_filter', content_filter_results: { violence: { filtered: true } } });
    const events = parse(await (await post(ANTHROPIC, claude({ stream: true }), ANTHROPIC_HEADERS)).text());
    expect(JSON.parse(events.find((e) => e.event === 'message_delta')?.data ?? '{}')).toMatchObject({ delta: { stop_reason: 'refusal' } });
  });

  it('resets the connection before answering', async () => {
    fake.script({ kind: 'connection_reset' });
    // fetch's errors come from another realm than jest's, so match on what they say rather than on their class.
    const error = await post(OPENAI, chat()).then(
      () => undefined,
      (e: unknown) => e as Error & { cause?: { code?: string } },
    );
    expect(error?.message).toBe('fetch failed');
    expect(error?.cause?.code).toBe('ECONNRESET');
    expect(fake.attempts[0]).toMatchObject({ outcome: 'connection_reset', aborted: false });
  });

  it('never answers, and records that the client gave up', async () => {
    fake.script({ kind: 'timeout' });
    await expect(post(OPENAI, chat(), {}, AbortSignal.timeout(150))).rejects.toThrow(/aborted|timeout/i);
    await until(() => fake.attempts[0]?.aborted === true, 'the fake saw the request aborted');
    expect(fake.attempts[0]?.outcome).toBe('timeout');
  });

  it('stalls a stream after N content chunks with the connection open', async () => {
    fake.script({ kind: 'stream_stall', afterChunks: 2 });
    const { text, ended } = await readUntilQuiet(await post(OPENAI, chat({ stream: true })), 300);
    expect(ended).toBe(false);
    expect(contentOf(openAIChunks(text))).toBe('Hello from ');
    await until(() => fake.attempts[0]?.aborted === true, 'the fake saw the request aborted');
  });

  it('stalls before the first content when N is 0, after the headers and the opening events', async () => {
    fake.script({ kind: 'stream_stall', afterChunks: 0 });
    const { text, ended } = await readUntilQuiet(await post(ANTHROPIC, claude({ stream: true }), ANTHROPIC_HEADERS), 200);
    expect(ended).toBe(false);
    expect(parse(text).map((e) => e.event)).toEqual(['message_start', 'content_block_start', 'ping']);
  });

  it('cuts a stream cleanly without [DONE] or message_stop', async () => {
    fake.script({ kind: 'stream_cut', afterChunks: 3 });
    const openai = await (await post(OPENAI, chat({ stream: true }))).text();
    expect(contentOf(openAIChunks(openai))).toBe('Hello from the ');
    expect(openai).not.toContain('[DONE]');
    const anthropic = await (await post(ANTHROPIC, claude({ stream: true }), ANTHROPIC_HEADERS)).text();
    expect(parse(anthropic).map((e) => e.event)).not.toContain('message_stop');
    expect(fake.attempts.every((a) => !a.aborted)).toBe(true);
  });

  it('cuts after the last content when N is beyond it, so only the ending is missing', async () => {
    fake.script({ kind: 'stream_cut', afterChunks: 99 });
    const text = await (await post(OPENAI, chat({ stream: true }))).text();
    expect(contentOf(openAIChunks(text))).toBe(TEXT);
    expect(openAIChunks(text).some((c) => c.choices[0]?.finish_reason !== null)).toBe(false);
  });

  it('breaks a stream by destroying the connection', async () => {
    fake.script({ kind: 'stream_cut', afterChunks: 1, how: 'destroy' });
    const response = await post(OPENAI, chat({ stream: true }));
    expect(response.status).toBe(200);
    await expect(response.text()).rejects.toThrow('terminated');
  });

  it('cuts and stalls non-streaming answers halfway through the JSON', async () => {
    fake.script([{ kind: 'stream_cut', afterChunks: 0 }, { kind: 'stream_stall', afterChunks: 0 }]);
    const cut = await (await post(OPENAI, chat())).text();
    expect(() => JSON.parse(cut) as unknown).toThrow();
    expect(cut.startsWith('{"id":"chatcmpl-fake0"')).toBe(true);
    expect((await readUntilQuiet(await post(OPENAI, chat()), 200)).ended).toBe(false);
  });

  it('writes garbage a tolerant reader skips, without losing the answer', async () => {
    fake.script({ kind: 'malformed_sse' });
    const text = await (await post(OPENAI, chat({ stream: true }))).text();
    for (const garbage of DEFAULT_GARBAGE) expect(text).toContain(garbage);
    const parser = new SseParser();
    const events = [...parser.push(text), ...parser.end()];
    expect(parser.skipped).toBeGreaterThan(0);
    expect(contentOf(events.filter((e) => e.data !== '[DONE]' && e.data !== '').map((e) => JSON.parse(e.data) as ChatChunk))).toBe(TEXT);
  });

  it('writes the garbage it is given, and a non-JSON body when not streaming', async () => {
    fake.script({ kind: 'malformed_sse', garbage: ['data: {"broken": \n\n'] });
    expect(await (await post(OPENAI, chat({ stream: true }))).text()).toContain('data: {"broken": \n\n');
    expect(await (await post(OPENAI, chat())).text()).toBe('this is not JSON');
  });
});

describe('fake provider: scripts, prefill, flapping, reset', () => {
  it('uses a list of behaviours in order, repeating the last', async () => {
    fake.script([{ kind: 'rate_limited' }, { kind: 'server_error' }, { kind: 'ok' }]);
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await post(OPENAI, chat())).status);
    expect(statuses).toEqual([429, 500, 200, 200]);
    expect(fake.attempts.map((a) => a.outcome)).toEqual(['rate_limited', 'server_error', 'ok', 'ok']);
  });

  it('lets a function decide from the attempt, e.g. by key', async () => {
    fake.script((attempt: Attempt) => (attempt.key === 'good' ? { kind: 'ok' } : { kind: 'auth_failed' }));
    expect((await post(OPENAI, chat(), { authorization: 'Bearer old' })).status).toBe(401);
    expect((await post(OPENAI, chat(), { authorization: 'Bearer good' })).status).toBe(200);
  });

  it('continues a prefill with the rest of the answer, or refuses it when prefill is off', async () => {
    const prefilled = claude({ messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello from' }] });
    const continued = (await (await post(ANTHROPIC, prefilled, ANTHROPIC_HEADERS)).json()) as { content: { text: string }[] };
    expect(continued.content[0]?.text).toBe(' the fake provider.');
    fake.prefill = false;
    const refused = await post(ANTHROPIC, prefilled, ANTHROPIC_HEADERS);
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({ error: { type: 'invalid_request_error', message: expect.stringContaining('does not support assistant message prefill') } });
    expect(fake.attempts[1]?.outcome).toBe('prefill_rejected');
    expect((await post(ANTHROPIC, claude(), ANTHROPIC_HEADERS)).status).toBe(200);
  });

  it('flaps: down for downMs from the first attempt, then up, then down again after upMs', () => {
    const at = (ms: number) => ({ at: 1_000_000 + ms }) as Attempt;
    const once = flapping({ downMs: 100 });
    expect([0, 99, 100, 10_000].map((ms) => once(at(ms)).kind)).toEqual(['server_error', 'server_error', 'ok', 'ok']);
    const cycling = flapping({ downMs: 100, upMs: 50, down: { kind: 'overloaded' } });
    expect([0, 100, 149, 150, 250].map((ms) => cycling(at(ms)).kind)).toEqual(['overloaded', 'ok', 'ok', 'overloaded', 'ok']);
  });

  it('flaps over real requests', async () => {
    fake.script(flapping({ downMs: 150 }));
    expect((await post(OPENAI, chat())).status).toBe(500);
    await sleep(200);
    expect((await post(OPENAI, chat())).status).toBe(200);
  });

  it('forgets attempts, script and prefill setting on reset', async () => {
    fake.script({ kind: 'server_error' });
    fake.prefill = false;
    await post(OPENAI, chat());
    fake.reset();
    expect(fake.attempts).toEqual([]);
    expect(fake.prefill).toBe(true);
    expect((await post(OPENAI, chat())).status).toBe(200);
    expect(fake.attempts[0]?.index).toBe(0);
  });
});

// The adapters against the fake: what each builds, the fake accepts, and what the fake answers, each reads back.
const providers: Record<keyof typeof ADAPTERS, (url: string) => CompiledProvider> = {
  openai: (url) => ({ name: 'openai', type: 'openai', baseURL: `${url}/v1`, keyFiles: [], keyRequired: true }),
  'azure-openai': (url) => ({ name: 'azure', type: 'azure-openai', baseURL: url, apiVersion: '2024-10-21', deployments: { 'gpt-4o-2024-08-06': 'gpt4o-prod' }, keyFiles: [], keyRequired: true }),
  anthropic: (url) => ({ name: 'anthropic', type: 'anthropic', baseURL: url, keyFiles: [], keyRequired: true }),
  'openai-compatible': (url) => ({ name: 'local', type: 'openai-compatible', baseURL: `${url}/v1`, keyFiles: [], keyRequired: false }),
};
const MODELS: Record<keyof typeof ADAPTERS, string> = { openai: 'gpt-4o-2024-08-06', 'azure-openai': 'gpt-4o-2024-08-06', anthropic: 'claude-sonnet-4-20250514', 'openai-compatible': 'llama3.2:3b' };
const KEYS: Record<keyof typeof ADAPTERS, string | undefined> = { openai: 'sk-openai', 'azure-openai': 'azure-key', anthropic: 'sk-ant', 'openai-compatible': undefined };
const TYPES = Object.keys(ADAPTERS) as (keyof typeof ADAPTERS)[];

function send(request: HttpRequest): Promise<Response> {
  return fetch(request.url, { method: request.method, headers: request.headers, ...(request.body === undefined ? {} : { body: request.body }) });
}

describe.each(TYPES)('the %s adapter against the fake', (type) => {
  const adapter: ProviderAdapter = ADAPTERS[type];
  const target = (): Target => ({ provider: providers[type](fake.url), model: MODELS[type], key: KEYS[type] });
  const request: ChatRequest = {
    model: 'chat',
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Weather?' },
    ],
  };

  it('sends what the fake accepts, with the right key, and reads the answer back', async () => {
    fake.script({ kind: 'ok', usage: { prompt_tokens: 20, completion_tokens: 5 } });
    const response = await send(adapter.chatRequest(request, target()));
    expect(response.status).toBe(200);
    const completion = adapter.parseChat(await response.json(), target());
    expect(completion.choices[0]?.message.content).toBe(TEXT);
    expect(completion.usage).toEqual({ prompt_tokens: 20, completion_tokens: 5, total_tokens: 25 });
    expect(fake.attempts[0]?.key).toBe(KEYS[type]);
    if (type !== 'azure-openai') expect((fake.attempts[0]?.body as { model: string }).model).toBe(MODELS[type]);
  });

  it('decodes the stream: the text, tool calls, and the usage at the end', async () => {
    fake.script({ kind: 'ok', text: 'Let me check.', toolCalls: [{ name: 'get_weather', arguments: '{"city":"Oslo"}' }], usage: { prompt_tokens: 30, completion_tokens: 9 } });
    const response = await send(adapter.chatRequest({ ...request, stream: true }, target()));
    const decoder = adapter.streamDecoder(target(), request);
    const decoded: DecodedEvent[] = parse(await response.text()).map((event) => decoder.decode(event));
    const chunks = decoded.flatMap((d) => (d.kind === 'chunks' ? d.chunks : []));
    expect(contentOf(chunks)).toBe('Let me check.');
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls.map((c) => c.function?.arguments ?? '').join('')).toBe('{"city":"Oslo"}');
    expect(chunks.some((c) => c.choices[0]?.finish_reason === 'tool_calls')).toBe(true);
    expect(decoded.at(-1)).toEqual({ kind: 'done', usage: { prompt_tokens: 30, completion_tokens: 9, total_tokens: 39 } });
  });

  it('classifies quota exhaustion and rate limiting apart, with the wait', async () => {
    fake.script([{ kind: 'quota_exhausted' }, { kind: 'rate_limited', retryAfterMs: 750 }]);
    const classify = async () => {
      const response = await send(adapter.chatRequest(request, target()));
      return adapter.classify(response.status, response.headers, await response.json(), target());
    };
    expect((await classify()).class).toBe('quota_exhausted');
    expect(await classify()).toMatchObject({ class: 'rate_limited', retryAfterMs: 750 });
  });

  it('classifies overload, a bad key and an over-long prompt', async () => {
    fake.script([{ kind: 'overloaded' }, { kind: 'auth_failed' }, { kind: 'context_length_exceeded' }]);
    const classes = [];
    for (let i = 0; i < 3; i++) {
      const response = await send(adapter.chatRequest(request, target()));
      classes.push(adapter.classify(response.status, response.headers, await response.json(), target()).class);
    }
    expect(classes).toEqual(['overloaded', 'auth_failed', 'context_length_exceeded']);
  });
});

describe('stream quirks end to end', () => {
  const azure = (): Target => ({ provider: providers['azure-openai'](fake.url), model: 'gpt-4o-2024-08-06', key: 'k' });

  it('Azure: a completion filtered mid-stream decodes to content_filtered with the category', async () => {
    fake.script({ kind: 'content_filtered', during: 'completion', category: 'self_harm' });
    const adapter = ADAPTERS['azure-openai'];
    const request: ChatRequest = { model: 'chat', messages: [{ role: 'user', content: 'x' }], stream: true };
    const decoder = adapter.streamDecoder(azure(), request);
    const error = parse(await (await send(adapter.chatRequest(request, azure()))).text())
      .map((e) => decoder.decode(e))
      .find((d) => d.kind === 'error');
    if (error?.kind !== 'error') throw new Error('expected an error');
    expect(adapter.classify(error.status, new Headers(), error.body, azure())).toMatchObject({ class: 'content_filtered', message: expect.stringContaining('(filtered: self_harm (high))') });
  });

  it('OpenAI-compatible: a cut stream is not complete, a whole one is', async () => {
    const adapter = ADAPTERS['openai-compatible'];
    const target: Target = { provider: providers['openai-compatible'](fake.url), model: 'llama3.2:3b', key: undefined };
    const request: ChatRequest = { model: 'chat', messages: [{ role: 'user', content: 'x' }], stream: true };
    const run = async () => {
      const decoder = adapter.streamDecoder(target, request) as CompatibleStreamDecoder;
      const decoded = parse(await (await send(adapter.chatRequest(request, target))).text()).map((e) => decoder.decode(e));
      return { sawDone: decoded.some((d) => d.kind === 'done'), end: decoder.end() };
    };
    fake.script({ kind: 'stream_cut', afterChunks: 2 });
    expect(await run()).toEqual({ sawDone: false, end: undefined });
    fake.script({ kind: 'ok' });
    expect(await run()).toMatchObject({ sawDone: true, end: { kind: 'done' } });
  });
});
