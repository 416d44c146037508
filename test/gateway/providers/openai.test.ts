import { describe, expect, it } from '@jest/globals';
import type { CompiledProvider } from '../../../src/api/gateway-config.js';
import { hintedRetryMs, openai } from '../../../src/gateway/providers/openai.js';
import { SseParser } from '../../../src/gateway/sse.js';
import type { ChatRequest, DecodedEvent, StreamDecoder, Target } from '../../../src/gateway/types.js';

const provider: CompiledProvider = { name: 'openai-prod', type: 'openai', keyFiles: ['/var/run/llmroute/keys/openai/0'], keyRequired: true };
const target = (over: Partial<Target> = {}): Target => ({ provider, model: 'gpt-4o-2024-08-06', key: 'sk-proj-test-key-0001', ...over });
const headers = (values: Record<string, string> = {}) => new Headers(values);
const bodyOf = (request: { body?: string }) => JSON.parse(request.body ?? 'null') as Record<string, unknown>;

/** Parses a raw event stream and decodes every event, as the router will. */
function decodeAll(decoder: StreamDecoder, raw: string): DecodedEvent[] {
  const parser = new SseParser();
  return [...parser.push(raw), ...parser.end()].map((event) => decoder.decode(event));
}

const chat: ChatRequest = {
  model: 'chat',
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Weather in Paris?' },
  ],
  tools: [{ type: 'function', function: { name: 'get_weather', description: 'Current weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
  tool_choice: 'auto',
  response_format: { type: 'json_object' },
  seed: 7,
  logit_bias: { '50256': -100 },
};

describe('openai chatRequest', () => {
  it('posts to the public API with a bearer key and the target model, never the alias', () => {
    const request = openai.chatRequest(chat, target());
    expect(request.url).toBe('https://api.openai.com/v1/chat/completions');
    expect(request.method).toBe('POST');
    expect(request.headers).toEqual({ 'content-type': 'application/json', authorization: 'Bearer sk-proj-test-key-0001' });
    expect(bodyOf(request).model).toBe('gpt-4o-2024-08-06');
  });

  it('passes tools, tool_choice, response_format and fields it does not know through untouched', () => {
    const body = bodyOf(openai.chatRequest(chat, target()));
    expect(body).toEqual({ ...chat, model: 'gpt-4o-2024-08-06' });
  });

  it('uses a configured baseURL, with or without a trailing slash', () => {
    const custom = (baseURL: string) => target({ provider: { ...provider, baseURL } });
    expect(openai.chatRequest(chat, custom('https://proxy.internal/v1/')).url).toBe('https://proxy.internal/v1/chat/completions');
    expect(openai.chatRequest(chat, custom('https://proxy.internal/v1')).url).toBe('https://proxy.internal/v1/chat/completions');
  });

  it('always asks for usage in streams, keeping the stream options the client set', () => {
    expect(bodyOf(openai.chatRequest({ ...chat, stream: true }, target())).stream_options).toEqual({ include_usage: true });
    expect(bodyOf(openai.chatRequest({ ...chat, stream: true, stream_options: { include_usage: false, include_obfuscation: false } as ChatRequest['stream_options'] }, target())).stream_options).toEqual({
      include_usage: true,
      include_obfuscation: false,
    });
  });

  it('drops stream_options from non-streaming requests, which OpenAI rejects', () => {
    expect(bodyOf(openai.chatRequest({ ...chat, stream_options: { include_usage: true } }, target()))).not.toHaveProperty('stream_options');
  });

  it('does not modify the client request', () => {
    const request: ChatRequest = { ...chat, stream: true };
    const copy = structuredClone(request);
    openai.chatRequest(request, target());
    expect(request).toEqual(copy);
  });

  it('builds embeddings requests against /embeddings with the target model', () => {
    const request = openai.embeddingsRequest!({ model: 'embed', input: ['a', 'b'], dimensions: 256 }, target({ model: 'text-embedding-3-small' }));
    expect(request.url).toBe('https://api.openai.com/v1/embeddings');
    expect(request.headers.authorization).toBe('Bearer sk-proj-test-key-0001');
    expect(bodyOf(request)).toEqual({ model: 'text-embedding-3-small', input: ['a', 'b'], dimensions: 256 });
  });

  it('does not continue prefills', () => {
    expect(openai.supportsPrefill).toBe(false);
  });
});

describe('openai parseChat', () => {
  const completion = {
    id: 'chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT',
    object: 'chat.completion',
    created: 1741569952,
    model: 'gpt-4o-2024-08-06',
    choices: [{ index: 0, message: { role: 'assistant', content: 'Hello! How can I assist you today?', refusal: null, annotations: [] }, logprobs: null, finish_reason: 'stop' }],
    usage: { prompt_tokens: 19, completion_tokens: 10, total_tokens: 29, prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 } },
    service_tier: 'default',
    system_fingerprint: 'fp_fc9f1d7035',
  };

  it('returns the completion as the provider sent it, model included', () => {
    expect(openai.parseChat(completion, target({ model: 'gpt-4o' }))).toEqual(completion);
  });

  it('throws a clear error for a body that is not a completion', () => {
    expect(() => openai.parseChat('<html>502 Bad Gateway</html>', target())).toThrow(/openai-prod: the response is not a chat completion: "<html>502/);
    expect(() => openai.parseChat({ error: { message: 'x' } }, target())).toThrow(/not a chat completion/);
  });
});

const HEAD = '"object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf"';
/** A recorded OpenAI text stream with `stream_options.include_usage`. */
const TEXT_STREAM = `data: {"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",${HEAD},"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",${HEAD},"choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",${HEAD},"choices":[{"index":0,"delta":{"content":"!"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",${HEAD},"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}

data: {"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",${HEAD},"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}

data: [DONE]

`;

/** A recorded OpenAI stream calling a tool. */
const TOOL_STREAM = `data: {"id":"chatcmpl-B9MJZ",${HEAD},"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","type":"function","function":{"name":"get_weather","arguments":""}}],"refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9MJZ",${HEAD},"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\""}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9MJZ",${HEAD},"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"city\\":\\"Paris\\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-B9MJZ",${HEAD},"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}

data: {"id":"chatcmpl-B9MJZ",${HEAD},"choices":[],"usage":{"prompt_tokens":61,"completion_tokens":15,"total_tokens":76}}

data: [DONE]

`;

describe('openai streamDecoder', () => {
  const usage = { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 };

  it('passes chunks through, keeps the usage chunk to itself when the client did not ask, and completes on [DONE]', () => {
    const decoded = decodeAll(openai.streamDecoder(target(), { ...chat, stream: true }), TEXT_STREAM);
    expect(decoded.map((d) => d.kind)).toEqual(['chunks', 'chunks', 'chunks', 'chunks', 'ignore', 'done']);
    const contents = decoded.flatMap((d) => (d.kind === 'chunks' ? d.chunks.map((c) => c.choices[0]?.delta.content) : []));
    expect(contents).toEqual(['', 'Hello', '!', undefined]);
    expect(decoded.at(-1)).toEqual({ kind: 'done', usage: expect.objectContaining(usage) });
  });

  it('forwards the usage chunk when the client asked for usage', () => {
    const decoded = decodeAll(openai.streamDecoder(target(), { ...chat, stream: true, stream_options: { include_usage: true } }), TEXT_STREAM);
    expect(decoded[4]).toEqual({ kind: 'chunks', chunks: [expect.objectContaining({ choices: [], usage: expect.objectContaining(usage) })] });
    expect(decoded[5]).toEqual({ kind: 'done', usage: expect.objectContaining(usage) });
  });

  it('passes tool call deltas through with their index, id and argument pieces', () => {
    const decoded = decodeAll(openai.streamDecoder(target(), chat), TOOL_STREAM);
    const calls = decoded.flatMap((d) => (d.kind === 'chunks' ? (d.chunks[0]?.choices[0]?.delta.tool_calls ?? []) : []));
    expect(calls.map((c) => c.function?.arguments).join('')).toBe('{"city":"Paris"}');
    expect(calls[0]).toMatchObject({ index: 0, id: 'call_DdmO9pD3xa9XTPNJ32zg2hcA', function: { name: 'get_weather' } });
    expect(decoded.at(-1)).toEqual({ kind: 'done', usage: { prompt_tokens: 61, completion_tokens: 15, total_tokens: 76 } });
  });

  it('reports [DONE] without usage when the provider sent none', () => {
    expect(decodeAll(openai.streamDecoder(target(), chat), 'data: [DONE]\n\n')).toEqual([{ kind: 'done' }]);
  });

  it('turns an error object inside the stream into an error the classifier reads', () => {
    const raw = 'data: {"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}\n\n';
    const [decoded] = decodeAll(openai.streamDecoder(target(), chat), raw);
    expect(decoded).toEqual({ kind: 'error', status: 500, body: expect.objectContaining({ error: expect.objectContaining({ type: 'server_error' }) }) });
    if (decoded?.kind !== 'error') throw new Error('expected an error');
    expect(openai.classify(decoded.status, headers(), decoded.body, target()).class).toBe('server_error');
  });

  it('reads an in-stream quota error as quota, whatever status it guessed', () => {
    const raw = 'data: {"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}\n\n';
    const [decoded] = decodeAll(openai.streamDecoder(target(), chat), raw);
    if (decoded?.kind !== 'error') throw new Error('expected an error');
    expect(openai.classify(decoded.status, headers(), decoded.body, target()).class).toBe('quota_exhausted');
  });

  it('reports data that is not JSON as a bad-gateway error rather than dropping part of the answer', () => {
    expect(decodeAll(openai.streamDecoder(target(), chat), 'data: {"choices": [\n\n')).toEqual([{ kind: 'error', status: 502, body: 'malformed stream event: {"choices": [' }]);
    expect(decodeAll(openai.streamDecoder(target(), chat), 'data: 42\n\n')[0]).toMatchObject({ kind: 'error', status: 502 });
  });

  it('ignores empty keep-alive data', () => {
    expect(decodeAll(openai.streamDecoder(target(), chat), 'data: \n\n')).toEqual([{ kind: 'ignore' }]);
  });
});

describe('openai classify', () => {
  const error = (message: string, type: string | null, code: string | null, param: string | null = null) => ({ error: { message, type, param, code } });
  const classify = (status: number, body: unknown, values: Record<string, string> = {}) => openai.classify(status, headers(values), body, target());

  const QUOTA = error('You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.', 'insufficient_quota', 'insufficient_quota');
  const RATE = error('Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, Used 29500, Requested 1200. Please try again in 1.4s. Visit https://platform.openai.com/account/rate-limits to learn more.', 'tokens', 'rate_limit_exceeded');

  it('tells quota exhaustion from rate limiting, though both are 429', () => {
    expect(classify(429, QUOTA)).toMatchObject({ class: 'quota_exhausted', status: 429, code: 'insufficient_quota', provider: 'openai-prod' });
    expect(classify(429, RATE, { 'retry-after-ms': '1400' })).toMatchObject({ class: 'rate_limited', code: 'rate_limit_exceeded', retryAfterMs: 1400 });
  });

  it('finds insufficient_quota in the type when the code is null', () => {
    expect(classify(429, error('You exceeded your current quota', 'insufficient_quota', null)).class).toBe('quota_exhausted');
  });

  it('takes the wait from retry-after-ms, then retry-after, then the message', () => {
    expect(classify(429, RATE, { 'retry-after-ms': '250', 'retry-after': '9' }).retryAfterMs).toBe(250);
    expect(classify(429, RATE, { 'retry-after': '2' }).retryAfterMs).toBe(2000);
    expect(classify(429, RATE).retryAfterMs).toBe(1400);
    expect(classify(429, error('Too many requests', 'requests', 'rate_limit_exceeded'))).not.toHaveProperty('retryAfterMs');
  });

  it('reads the Go-style durations OpenAI writes in messages', () => {
    expect(hintedRetryMs('Please try again in 20ms.')).toBe(20);
    expect(hintedRetryMs('Please try again in 6m0s.')).toBe(360_000);
    expect(hintedRetryMs('Please try again in 1m30.5s.')).toBe(90_500);
    expect(hintedRetryMs('Please retry after 59 seconds.')).toBe(59_000);
    expect(hintedRetryMs('Slow down.')).toBeUndefined();
  });

  it('classifies a bad key as auth_failed and never echoes the key', () => {
    const body = error('Incorrect API key provided: sk-proj-test-key-0001. You can find your API key at https://platform.openai.com/account/api-keys.', 'invalid_request_error', 'invalid_api_key');
    const classified = classify(401, body);
    expect(classified).toMatchObject({ class: 'auth_failed', status: 401, code: 'invalid_api_key' });
    expect(classified.message).not.toContain('sk-proj-test-key-0001');
    expect(classified.message).toContain('Incorrect API key provided: [redacted].');
    expect(classify(403, error('Country, region, or territory not supported', 'request_forbidden', 'unsupported_country_region_territory')).class).toBe('auth_failed');
  });

  it('classifies context length, content policy and other client errors', () => {
    const context = error("This model's maximum context length is 128000 tokens. However, your messages resulted in 130412 tokens. Please reduce the length of the messages.", 'invalid_request_error', 'context_length_exceeded', 'messages');
    expect(classify(400, context).class).toBe('context_length_exceeded');
    expect(classify(400, error('Your request was rejected as a result of our safety system.', 'invalid_request_error', 'content_policy_violation')).class).toBe('content_filtered');
    expect(classify(400, error('The response was filtered', null, 'content_filter')).class).toBe('content_filtered');
    expect(classify(400, error("Invalid value for 'temperature'", 'invalid_request_error', 'invalid_value', 'temperature')).class).toBe('bad_request');
    expect(classify(404, error('The model `gpt-5-pro` does not exist or you do not have access to it.', 'invalid_request_error', 'model_not_found')).class).toBe('bad_request');
  });

  it.each([
    [500, 'server_error'],
    [502, 'server_error'],
    [504, 'server_error'],
    [503, 'overloaded'],
    [529, 'overloaded'],
  ] as const)('classifies %d as %s', (status, errorClass) => {
    expect(classify(status, error('The server had an error while processing your request. Sorry about that!', 'server_error', null)).class).toBe(errorClass);
  });

  it('reads raw text bodies, such as a proxy error page', () => {
    expect(classify(502, '<html><body>502 Bad Gateway</body></html>')).toMatchObject({ class: 'server_error', message: '<html><body>502 Bad Gateway</body></html>' });
    expect(classify(503, '')).toMatchObject({ class: 'overloaded', message: 'empty response body' });
  });

  it('keeps long messages short', () => {
    expect(classify(500, 'x'.repeat(5000)).message.length).toBeLessThanOrEqual(1001);
  });
});
