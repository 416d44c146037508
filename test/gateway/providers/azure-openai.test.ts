import { describe, expect, it } from '@jest/globals';
import type { CompiledProvider } from '../../../src/api/gateway-config.js';
import { azureOpenAI } from '../../../src/gateway/providers/azure-openai.js';
import { SseParser } from '../../../src/gateway/sse.js';
import type { ChatRequest, DecodedEvent, StreamDecoder, Target } from '../../../src/gateway/types.js';

const provider: CompiledProvider = {
  name: 'azure-eastus',
  type: 'azure-openai',
  baseURL: 'https://contoso-eastus.openai.azure.com/',
  apiVersion: '2024-10-21',
  deployments: { 'gpt-4o-2024-08-06': 'gpt4o-prod', 'text-embedding-3-small': 'embed-small' },
  keyFiles: ['/var/run/llmroute/keys/azure/0'],
  keyRequired: true,
};
const target = (over: Partial<Target> = {}): Target => ({ provider, model: 'gpt-4o-2024-08-06', key: '0123456789abcdef0123456789abcdef', ...over });
const bodyOf = (request: { body?: string }) => JSON.parse(request.body ?? 'null') as Record<string, unknown>;
const chat: ChatRequest = { model: 'chat', messages: [{ role: 'user', content: 'Hi' }], temperature: 0.2, response_format: { type: 'json_object' } };

function decodeAll(decoder: StreamDecoder, raw: string): DecodedEvent[] {
  const parser = new SseParser();
  return [...parser.push(raw), ...parser.end()].map((event) => decoder.decode(event));
}

describe('azure-openai chatRequest', () => {
  it('puts the deployment and api-version in the URL and the key in api-key, with no Authorization header', () => {
    const request = azureOpenAI.chatRequest(chat, target());
    expect(request.url).toBe('https://contoso-eastus.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21');
    expect(request.headers).toEqual({ 'content-type': 'application/json', 'api-key': '0123456789abcdef0123456789abcdef' });
  });

  it('sends no model in the body (the deployment decides) and passes the rest through', () => {
    expect(bodyOf(azureOpenAI.chatRequest(chat, target()))).toEqual({ messages: chat.messages, temperature: 0.2, response_format: { type: 'json_object' } });
  });

  it('asks for usage in streams', () => {
    expect(bodyOf(azureOpenAI.chatRequest({ ...chat, stream: true }, target())).stream_options).toEqual({ include_usage: true });
  });

  it('fails clearly when the model has no deployment, or the provider no api-version', () => {
    expect(() => azureOpenAI.chatRequest(chat, target({ model: 'gpt-4o-2024-11-20' }))).toThrow('provider "azure-eastus" (azure-openai) has no deployment for model "gpt-4o-2024-11-20"');
    expect(() => azureOpenAI.chatRequest(chat, target({ provider: { ...provider, apiVersion: undefined } }))).toThrow('has no apiVersion');
    expect(() => azureOpenAI.chatRequest(chat, target({ provider: { ...provider, baseURL: undefined } }))).toThrow('has no baseURL');
  });

  it('builds embeddings requests against the deployment', () => {
    const request = azureOpenAI.embeddingsRequest!({ model: 'embed', input: 'hello' }, target({ model: 'text-embedding-3-small' }));
    expect(request.url).toBe('https://contoso-eastus.openai.azure.com/openai/deployments/embed-small/embeddings?api-version=2024-10-21');
    expect(bodyOf(request)).toEqual({ input: 'hello' });
  });
});

describe('azure-openai parseChat', () => {
  it("reports the model Azure says answered, not the deployment's name", () => {
    const body = {
      choices: [
        {
          content_filter_results: { hate: { filtered: false, severity: 'safe' }, self_harm: { filtered: false, severity: 'safe' }, sexual: { filtered: false, severity: 'safe' }, violence: { filtered: false, severity: 'safe' } },
          finish_reason: 'stop',
          index: 0,
          logprobs: null,
          message: { content: 'Hello!', refusal: null, role: 'assistant' },
        },
      ],
      created: 1741600000,
      id: 'chatcmpl-B9abc',
      model: 'gpt-4o-2024-08-06',
      object: 'chat.completion',
      prompt_filter_results: [{ prompt_index: 0, content_filter_results: { hate: { filtered: false, severity: 'safe' } } }],
      system_fingerprint: 'fp_ee1d74bde0',
      usage: { completion_tokens: 2, prompt_tokens: 8, total_tokens: 10 },
    };
    const completion = azureOpenAI.parseChat(body, target());
    expect(completion.model).toBe('gpt-4o-2024-08-06');
    expect(completion.usage).toEqual({ completion_tokens: 2, prompt_tokens: 8, total_tokens: 10 });
  });
});

const SAFE = '{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}';
const HEAD = '"created":1741600000,"id":"chatcmpl-B9xyz","model":"gpt-4o-2024-08-06","object":"chat.completion.chunk","system_fingerprint":"fp_ee1d74bde0"';
/** A recorded Azure stream: a prompt-filter annotation first (no choices), filter results on every choice. */
const STREAM = `data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":${SAFE}}]}

data: {"choices":[{"content_filter_results":{},"delta":{"content":"","refusal":null,"role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],${HEAD},"usage":null}

data: {"choices":[{"content_filter_results":${SAFE},"delta":{"content":"Hello"},"finish_reason":null,"index":0,"logprobs":null}],${HEAD},"usage":null}

data: {"choices":[{"content_filter_results":{},"delta":{},"finish_reason":"stop","index":0,"logprobs":null}],${HEAD},"usage":null}

data: {"choices":[],${HEAD},"usage":{"completion_tokens":1,"prompt_tokens":8,"total_tokens":9}}

data: [DONE]

`;

/** A stream Azure's filter stopped: the last choice finishes with `content_filter` and says which category fired. */
const FILTERED_STREAM = `data: {"choices":[{"content_filter_results":{},"delta":{"content":"","role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],${HEAD}}

data: {"choices":[{"content_filter_results":${SAFE},"delta":{"content":"Here is how"},"finish_reason":null,"index":0,"logprobs":null}],${HEAD}}

data: {"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":true,"severity":"medium"}},"delta":{},"finish_reason":"content_filter","index":0,"logprobs":null}],${HEAD}}

data: [DONE]

`;

describe('azure-openai streamDecoder', () => {
  it('drops the prompt-filter annotation, passes chunks, captures usage and completes on [DONE]', () => {
    const decoded = decodeAll(azureOpenAI.streamDecoder(target(), { ...chat, stream: true }), STREAM);
    expect(decoded.map((d) => d.kind)).toEqual(['ignore', 'chunks', 'chunks', 'chunks', 'ignore', 'done']);
    expect(decoded[2]).toMatchObject({ kind: 'chunks', chunks: [{ model: 'gpt-4o-2024-08-06', choices: [{ delta: { content: 'Hello' } }] }] });
    expect(decoded.at(-1)).toEqual({ kind: 'done', usage: { completion_tokens: 1, prompt_tokens: 8, total_tokens: 9 } });
  });

  it('turns a content_filter finish into a content_filtered error naming the category', () => {
    const decoded = decodeAll(azureOpenAI.streamDecoder(target(), chat), FILTERED_STREAM);
    expect(decoded.map((d) => d.kind)).toEqual(['chunks', 'chunks', 'error', 'done']);
    const error = decoded[2];
    if (error?.kind !== 'error') throw new Error('expected an error');
    expect(error.status).toBe(400);
    const classified = azureOpenAI.classify(error.status, new Headers(), error.body, target());
    expect(classified).toMatchObject({ class: 'content_filtered', code: 'content_filter', provider: 'azure-eastus' });
    expect(classified.message).toMatch(/\(filtered: violence \(medium\)\)$/);
  });

  it("drops the asynchronous filter's annotation chunks, which have no delta, but keeps a finish reason they carry", () => {
    const annotation = `data: {"choices":[{"content_filter_offsets":{"check_offset":44,"start_offset":44,"end_offset":198},"content_filter_results":${SAFE},"finish_reason":null,"index":0}],"created":0,"id":"","model":"","object":"","usage":null}\n\n`;
    const finish = `data: {"choices":[{"content_filter_results":${SAFE},"finish_reason":"stop","index":0}],${HEAD},"usage":null}\n\n`;
    const decoded = decodeAll(azureOpenAI.streamDecoder(target(), chat), annotation + finish);
    expect(decoded[0]).toEqual({ kind: 'ignore' });
    expect(decoded[1]).toMatchObject({ kind: 'chunks', chunks: [{ choices: [{ delta: {}, finish_reason: 'stop' }] }] });
  });
});

describe('azure-openai classify', () => {
  const classify = (status: number, body: unknown, values: Record<string, string> = {}) => azureOpenAI.classify(status, new Headers(values), body, target());

  it('classifies a filtered prompt as content_filtered with the categories that fired', () => {
    const body = {
      error: {
        message:
          "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
        type: null,
        param: 'prompt',
        code: 'content_filter',
        status: 400,
        innererror: {
          code: 'ResponsibleAIPolicyViolation',
          content_filter_result: {
            hate: { filtered: false, severity: 'safe' },
            jailbreak: { filtered: true, detected: true },
            self_harm: { filtered: false, severity: 'safe' },
            sexual: { filtered: true, severity: 'medium' },
            violence: { filtered: false, severity: 'safe' },
          },
        },
      },
    };
    const classified = classify(400, body);
    expect(classified).toMatchObject({ class: 'content_filtered', status: 400, code: 'content_filter' });
    expect(classified.message).toMatch(/content management policy.*\(filtered: jailbreak, sexual \(medium\)\)$/);
  });

  it('treats a ResponsibleAIPolicyViolation as content_filtered even without the content_filter code', () => {
    expect(classify(400, { error: { code: 'BadRequest', message: 'Blocked', innererror: { code: 'ResponsibleAIPolicyViolation' } } }).class).toBe('content_filtered');
  });

  it("reads Azure's 429 as rate limiting, although its message links to a quota-increase page", () => {
    const body = {
      error: {
        code: '429',
        message:
          'Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit.',
      },
    };
    expect(classify(429, body, { 'retry-after': '6', 'retry-after-ms': '6000' })).toMatchObject({ class: 'rate_limited', code: '429', retryAfterMs: 6000 });
    expect(classify(429, body).retryAfterMs).toBe(6000);
  });

  it('reads insufficient_quota as quota exhaustion', () => {
    expect(classify(429, { error: { code: 'insufficient_quota', message: 'You exceeded your current quota.' } }).class).toBe('quota_exhausted');
  });

  it('classifies a bad key, context length and server errors', () => {
    const denied = { error: { code: '401', message: 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.' } };
    expect(classify(401, denied).class).toBe('auth_failed');
    const context = { error: { message: "This model's maximum context length is 128000 tokens. However, your messages resulted in 131000 tokens.", type: 'invalid_request_error', param: 'messages', code: 'context_length_exceeded' } };
    expect(classify(400, context).class).toBe('context_length_exceeded');
    expect(classify(404, { error: { code: 'DeploymentNotFound', message: 'The API deployment for this resource does not exist.' } })).toMatchObject({ class: 'bad_request', code: 'DeploymentNotFound' });
    expect(classify(500, { error: { code: 'InternalServerError', message: 'The service is temporarily unable to process your request.' } }).class).toBe('server_error');
    expect(classify(503, { error: { code: 'ServiceUnavailable', message: 'The service is temporarily unable to process your request.' } }).class).toBe('overloaded');
  });
});
