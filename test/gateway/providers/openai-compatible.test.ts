import { describe, expect, it } from '@jest/globals';
import type { CompiledProvider } from '../../../src/api/gateway-config.js';
import { openAICompatible, type CompatibleStreamDecoder } from '../../../src/gateway/providers/openai-compatible.js';
import { SseParser } from '../../../src/gateway/sse.js';
import type { ChatRequest, DecodedEvent, Target } from '../../../src/gateway/types.js';

const provider: CompiledProvider = { name: 'local', type: 'openai-compatible', baseURL: 'http://vllm.ai.svc:8000/v1', keyFiles: [], keyRequired: false };
const target = (over: Partial<Target> = {}): Target => ({ provider, model: 'meta-llama/Llama-3.3-70B-Instruct', key: undefined, ...over });
const bodyOf = (request: { body?: string }) => JSON.parse(request.body ?? 'null') as Record<string, unknown>;
const chat: ChatRequest = { model: 'chat', messages: [{ role: 'user', content: 'Hi' }], stream: true };

/** Decodes a raw stream, then reports what the end of the body means, as the router will. */
function decodeAll(raw: string): { events: DecodedEvent[]; end: DecodedEvent | undefined } {
  const decoder = openAICompatible.streamDecoder(target(), chat) as CompatibleStreamDecoder;
  const parser = new SseParser();
  const events = [...parser.push(raw), ...parser.end()].map((event) => decoder.decode(event));
  return { events, end: decoder.end() };
}

describe('openai-compatible chatRequest', () => {
  it('posts to the server with the target model and asks for usage', () => {
    const request = openAICompatible.chatRequest(chat, target());
    expect(request.url).toBe('http://vllm.ai.svc:8000/v1/chat/completions');
    expect(bodyOf(request)).toEqual({ model: 'meta-llama/Llama-3.3-70B-Instruct', messages: chat.messages, stream: true, stream_options: { include_usage: true } });
  });

  it('sends Authorization only when there is a key', () => {
    expect(openAICompatible.chatRequest(chat, target()).headers).toEqual({ 'content-type': 'application/json' });
    expect(openAICompatible.chatRequest(chat, target({ key: '' })).headers).not.toHaveProperty('authorization');
    expect(openAICompatible.chatRequest(chat, target({ key: 'token-abc' })).headers.authorization).toBe('Bearer token-abc');
  });

  it('needs a baseURL', () => {
    expect(() => openAICompatible.chatRequest(chat, target({ provider: { ...provider, baseURL: undefined } }))).toThrow('provider "local" (openai-compatible) has no baseURL');
  });

  it('builds embeddings requests', () => {
    const request = openAICompatible.embeddingsRequest!({ model: 'embed', input: 'x' }, target({ model: 'nomic-embed-text' }));
    expect(request.url).toBe('http://vllm.ai.svc:8000/v1/embeddings');
    expect(bodyOf(request)).toEqual({ model: 'nomic-embed-text', input: 'x' });
  });

  it('does not continue prefills', () => {
    expect(openAICompatible.supportsPrefill).toBe(false);
  });
});

describe('openai-compatible parseChat', () => {
  it('fills in the requested model when the server leaves it out', () => {
    const body = { id: 'chatcmpl-1', object: 'chat.completion', created: 1, choices: [{ index: 0, message: { role: 'assistant', content: 'Hi' }, finish_reason: 'stop' }] };
    expect(openAICompatible.parseChat(body, target()).model).toBe('meta-llama/Llama-3.3-70B-Instruct');
    expect(openAICompatible.parseChat({ ...body, model: 'llama3.2:3b' }, target()).model).toBe('llama3.2:3b');
  });
});

const VLLM = `data: {"id":"chatcmpl-9d5c","object":"chat.completion.chunk","created":1741600000,"model":"meta-llama/Llama-3.3-70B-Instruct","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

data: {"id":"chatcmpl-9d5c","object":"chat.completion.chunk","created":1741600000,"model":"meta-llama/Llama-3.3-70B-Instruct","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":"stop","stop_reason":null}]}

data: {"id":"chatcmpl-9d5c","object":"chat.completion.chunk","created":1741600000,"model":"meta-llama/Llama-3.3-70B-Instruct","choices":[],"usage":{"prompt_tokens":12,"total_tokens":13,"completion_tokens":1}}

data: [DONE]

`;

/** Ollama's OpenAI endpoint without usage in the stream. */
const OLLAMA = `data: {"id":"chatcmpl-412","object":"chat.completion.chunk","created":1741600000,"model":"llama3.2:3b","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}

data: {"id":"chatcmpl-412","object":"chat.completion.chunk","created":1741600000,"model":"llama3.2:3b","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"stop"}]}

data: [DONE]

`;

/** An older llama.cpp server: usage in the last chunk, and no [DONE]. */
const LLAMA_CPP = `data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":"Hi"}}],"created":1741600000,"id":"chatcmpl-x1","model":"gpt-3.5-turbo","object":"chat.completion.chunk"}

data: {"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"created":1741600000,"id":"chatcmpl-x1","model":"gpt-3.5-turbo","object":"chat.completion.chunk","usage":{"completion_tokens":1,"prompt_tokens":5,"total_tokens":6}}

`;

describe('openai-compatible streamDecoder', () => {
  it('reads a vLLM stream with usage and [DONE]', () => {
    const { events } = decodeAll(VLLM);
    expect(events.map((e) => e.kind)).toEqual(['chunks', 'chunks', 'ignore', 'done']);
    expect(events.at(-1)).toEqual({ kind: 'done', usage: { prompt_tokens: 12, total_tokens: 13, completion_tokens: 1 } });
  });

  it('completes without usage when the server sends none', () => {
    expect(decodeAll(OLLAMA).events.at(-1)).toEqual({ kind: 'done' });
  });

  it('treats a body that ends after a finish reason, without [DONE], as complete', () => {
    const { events, end } = decodeAll(LLAMA_CPP);
    expect(events.map((e) => e.kind)).toEqual(['chunks', 'chunks']);
    expect(end).toEqual({ kind: 'done', usage: { completion_tokens: 1, prompt_tokens: 5, total_tokens: 6 } });
  });

  it('treats a body that ends before any finish reason as cut', () => {
    expect(decodeAll(LLAMA_CPP.split('\n\n')[0] + '\n\n').end).toBeUndefined();
  });

  it("reads llama.cpp's `error:` line and vLLM's top-level error objects as errors with their status", () => {
    const llama = decodeAll('error: {"code":500,"message":"Failed to parse tool call","type":"server_error"}\n\n').events[0];
    expect(llama).toEqual({ kind: 'error', status: 500, body: { code: 500, message: 'Failed to parse tool call', type: 'server_error' } });
    const vllm = decodeAll('data: {"object":"error","message":"Out of memory","type":"InternalServerError","param":null,"code":503}\n\n').events[0];
    expect(vllm).toMatchObject({ kind: 'error', status: 503 });
    if (vllm?.kind !== 'error') throw new Error('expected an error');
    expect(openAICompatible.classify(vllm.status, new Headers(), vllm.body, target())).toMatchObject({ class: 'overloaded', message: 'Out of memory' });
  });
});

describe('openai-compatible classify', () => {
  const classify = (status: number, body: unknown) => openAICompatible.classify(status, new Headers(), body, target());

  it("reads llama.cpp's context error, with its numeric code", () => {
    const body = { error: { code: 400, message: 'request (4476 tokens) exceeds the available context size (4096 tokens), try increasing it', type: 'exceed_context_size_error', n_prompt_tokens: 4476, n_ctx: 4096 } };
    expect(classify(400, body)).toMatchObject({ class: 'context_length_exceeded', code: '400' });
  });

  it("reads vLLM's older top-level error body", () => {
    const body = { object: 'error', message: "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens (8000 in the messages, 1000 in the completion).", type: 'BadRequestError', param: null, code: 400 };
    expect(classify(400, body)).toMatchObject({ class: 'context_length_exceeded', message: expect.stringContaining('maximum context length is 8192') });
  });

  it('reads a model still loading as overloaded, a bad key as auth_failed, an unknown model as bad_request', () => {
    expect(classify(503, { error: { code: 503, message: 'Loading model', type: 'unavailable_error' } }).class).toBe('overloaded');
    expect(classify(401, { error: { code: 401, message: 'Invalid API Key', type: 'authentication_error' } }).class).toBe('auth_failed');
    expect(classify(404, { error: 'model "llama3" not found, try pulling it first' })).toMatchObject({ class: 'bad_request', message: 'model "llama3" not found, try pulling it first' });
  });
});
