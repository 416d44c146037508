/**
 * The gateway's OpenAI-compatible surface, through the official SDK where it can be: bad input is refused in
 * OpenAI's error format (so the SDK raises its usual typed errors), `/v1/models` lists the route's models, client
 * tokens are checked, and the answer names the model that actually answered and says so in its headers.
 */
import { describe, expect, it } from '@jest/globals';
import OpenAI, { type APIError } from 'openai';
import { ask, askError, CLAUDE, e2eSuite, gatewayFor, GPT, TEXT, USER } from './fixtures.js';

const suite = e2eSuite();

const TOKEN = 'llmr-client-token-web-5f2c9a1e7d3b';

function post(body: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${suite.gateway?.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
}

/** OpenAI's error shape, exactly: what the SDK parses into its typed errors. */
async function expectOpenAIError(response: Response, status: number): Promise<{ message: string; type: string; param: string | null; code: string | null }> {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toBe('application/json');
  const body = (await response.json()) as { error: { message: string; type: string; param: string | null; code: string | null } };
  expect(Object.keys(body)).toEqual(['error']);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(typeof body.error.message).toBe('string');
  return body.error;
}

describe('bad input', () => {
  it('malformed JSON: 400 in OpenAI error format, before any provider is asked', async () => {
    suite.gateway = await gatewayFor(suite.fakes);
    const error = await expectOpenAIError(await post('{"model": "chat", "messages": ['), 400);
    expect(error.type).toBe('invalid_request_error');
    expect(error.message).toContain('not valid JSON');
    expect(suite.fakes.openai.attempts).toHaveLength(0);
  });

  it('a body over the limit: 413, declared or streamed without a length', async () => {
    suite.gateway = await gatewayFor(suite.fakes, { maxBodyBytes: 4096 });
    const client = suite.gateway.client();
    const { error } = await askError(client, false, { messages: [{ role: 'user', content: 'x'.repeat(10_000) }] });
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as APIError).status).toBe(413);
    expect((error as APIError).code).toBe('request_too_large');
    expect((error as APIError).message).toContain('limit of 4096 bytes');

    // Chunked, so that only counting the bytes as they arrive can catch it.
    const big = JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'y'.repeat(10_000) }] });
    const chunked = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(big));
        controller.close();
      },
    });
    const response = await fetch(`${suite.gateway.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chunked, duplex: 'half' } as RequestInit);
    const body = await expectOpenAIError(response, 413);
    expect(body.code).toBe('request_too_large');
    expect(suite.fakes.openai.attempts).toHaveLength(0);

    // The gateway still serves after refusing.
    expect((await ask(client, false)).text).toBe(TEXT);
  });

  it('an unknown model: NotFoundError listing the available models', async () => {
    suite.gateway = await gatewayFor(suite.fakes);
    const { error } = await askError(suite.gateway.client(), false, { model: 'gpt-5' });
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect((error as APIError).message).toContain('model "gpt-5" does not exist');
    expect((error as APIError).message).toContain('available: chat');
    expect((error as APIError).code).toBe('model_not_found');
    expect((error as APIError).param).toBe('model');
    const streaming = await askError(suite.gateway.client(), true, { model: 'gpt-5' });
    expect(streaming.error).toBeInstanceOf(OpenAI.NotFoundError);
    expect(suite.fakes.openai.attempts).toHaveLength(0);
  });

  it('a request without messages: BadRequestError naming the parameter', async () => {
    suite.gateway = await gatewayFor(suite.fakes);
    const { error } = await askError(suite.gateway.client(), false, { messages: [] });
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as APIError).param).toBe('messages');
  });

  it('an unknown path: 404 in OpenAI error format', async () => {
    suite.gateway = await gatewayFor(suite.fakes);
    const error = await expectOpenAIError(await fetch(`${suite.gateway.url}/v1/completions`, { method: 'POST', body: '{}' }), 404);
    expect(error.code).toBe('unknown_url');
  });
});

describe('GET /v1/models', () => {
  it("lists the route's models", async () => {
    suite.gateway = await gatewayFor(suite.fakes, {
      models: [
        { name: 'chat', pin: GPT, fallback: [{ provider: 'openai' }] },
        { name: 'claude', pin: CLAUDE, fallback: [{ provider: 'anthropic' }] },
      ],
    });
    const models = [];
    for await (const model of suite.gateway.client().models.list()) models.push(model);
    expect(models.map((m) => m.id)).toEqual(['chat', 'claude']);
    expect(models.every((m) => m.object === 'model')).toBe(true);
  });
});

describe('client tokens (auth: tokens)', () => {
  it('a missing or wrong token is a 401 AuthenticationError; the right one works', async () => {
    suite.gateway = await gatewayFor(suite.fakes, { clients: { web: TOKEN } });
    const missing = await expectOpenAIError(await post(JSON.stringify({ model: 'chat', messages: USER })), 401);
    expect(missing.message).toContain('missing bearer token');
    expect(missing.code).toBe('invalid_api_key');

    for (const stream of [false, true]) {
      const { error } = await askError(suite.gateway.client('llmr-wrong-token'), stream);
      expect(error).toBeInstanceOf(OpenAI.AuthenticationError);
      expect((error as APIError).message).toContain('invalid client token');
    }
    await expect(suite.gateway.client('llmr-wrong-token').models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    expect(suite.fakes.openai.attempts).toHaveLength(0);

    const answer = await ask(suite.gateway.client(TOKEN), false);
    expect(answer.text).toBe(TEXT);
    expect(suite.fakes.openai.attempts).toHaveLength(1);
    // The client token is the gateway's, never forwarded: the provider gets the provider key.
    expect(suite.fakes.openai.attempts[0]?.key).not.toBe(TOKEN);
    expect(JSON.stringify(suite.fakes.openai.attempts[0]?.headers)).not.toContain(TOKEN);
    const log = suite.gateway.logs.map((line) => JSON.parse(line) as Record<string, unknown>).find((line) => line.msg === 'request');
    expect(log?.client).toBe('web');
  });
});

describe('who answered', () => {
  it.each([
    ['non-streaming', false],
    ['streaming', true],
  ])('%s: model names the fallback model that answered, never the alias; headers say provider, attempts and depth', async (_mode, stream) => {
    suite.gateway = await gatewayFor(suite.fakes);
    suite.fakes.openai.script({ kind: 'overloaded' });
    const answer = await ask(suite.gateway.client(), stream);
    expect(answer.text).toBe(TEXT);
    expect(answer.models).toEqual([CLAUDE]);
    expect(answer.headers.get('x-llmroute-provider')).toBe('anthropic');
    expect(answer.headers.get('x-llmroute-attempts')).toBe('2');
    expect(answer.headers.get('x-llmroute-fallback-depth')).toBe('1');
    expect(answer.headers.get('x-request-id')).toMatch(/^chatcmpl-/);
    // Neither provider was sent the alias.
    expect((suite.fakes.openai.attempts[0]?.body as { model: string }).model).toBe(GPT);
    expect((suite.fakes.anthropic.attempts[0]?.body as { model: string }).model).toBe(CLAUDE);

    suite.fakes.openai.script({ kind: 'ok' });
    const direct = await ask(suite.gateway.client(), stream);
    expect(direct.models).toEqual([GPT]);
  });

  it('the primary answering: depth 0, one attempt', async () => {
    suite.gateway = await gatewayFor(suite.fakes);
    for (const stream of [false, true]) {
      const answer = await ask(suite.gateway.client(), stream);
      expect(answer.models).toEqual([GPT]);
      expect(answer.headers.get('x-llmroute-provider')).toBe('openai');
      expect(answer.headers.get('x-llmroute-attempts')).toBe('1');
      expect(answer.headers.get('x-llmroute-fallback-depth')).toBe('0');
    }
  });
});
