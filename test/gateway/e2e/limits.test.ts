/**
 * Caps and per-client rate limits through the OpenAI SDK: `max_tokens` over the model's `maxOutputTokens` is clamped
 * or refused as the model says, and a client over its `limits` waits in the queue, then gets 429 with Retry-After.
 */
import { afterAll, afterEach, beforeAll, expect, it } from '@jest/globals';
import OpenAI from 'openai';
import type { TestGateway } from '../../support/gateway.js';
import { GPT, gatewayFor, resetFakes, startFakes, stopFakes, TIMEOUTS, USER, type Fakes } from './fixtures.js';

let fakes: Fakes;
let gateway: TestGateway | undefined;
beforeAll(async () => {
  fakes = await startFakes();
});
afterEach(async () => {
  await gateway?.stop();
  gateway = undefined;
  resetFakes(fakes);
});
afterAll(() => stopFakes(fakes));

const capped = (overMaxOutputTokens: 'clamp' | 'reject') => [{ name: 'chat', pin: GPT, maxOutputTokens: 50, overMaxOutputTokens, timeouts: TIMEOUTS, fallback: [{ provider: 'openai' }] }];

it('clamps max_tokens over the cap, and sends the cap when the client sets none', async () => {
  gateway = await gatewayFor(fakes, { models: capped('clamp') });
  await gateway.client().chat.completions.create({ model: 'chat', messages: USER, max_tokens: 500 });
  await gateway.client().chat.completions.create({ model: 'chat', messages: USER });
  const sent = fakes.openai.attempts.map((a) => (a.body as { max_tokens?: number }).max_tokens);
  expect(sent).toEqual([50, 50]);
});

it('refuses max_tokens over the cap with 400 saying by how much, before any provider is asked', async () => {
  gateway = await gatewayFor(fakes, { models: capped('reject') });
  const error = await gateway.client().chat.completions.create({ model: 'chat', messages: USER, max_tokens: 80 }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(OpenAI.BadRequestError);
  expect((error as InstanceType<typeof OpenAI.BadRequestError>).message).toContain('max_tokens is 80, 30 over model "chat"\'s limit of 50');
  expect((error as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('max_tokens_exceeded');
  expect(fakes.openai.attempts).toHaveLength(0);
  await gateway.client().chat.completions.create({ model: 'chat', messages: USER, max_tokens: 50 });
  expect(fakes.openai.attempts).toHaveLength(1);
});

it('holds a client to its requests per minute: a burst waits in the queue, and what cannot wait gets 429 with Retry-After', async () => {
  gateway = await gatewayFor(fakes, { clients: { web: 'token-web', batch: 'token-batch' }, clientLimits: { web: { requestsPerMinute: 60 } } });
  const web = gateway.client('token-web');
  const started = Date.now();
  // 60 per minute is one a second: the second request waits about a second instead of failing.
  await web.chat.completions.create({ model: 'chat', messages: USER });
  await web.chat.completions.create({ model: 'chat', messages: USER });
  expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  // Another client is not held back by web's limit.
  const otherStarted = Date.now();
  await gateway.client('token-batch').chat.completions.create({ model: 'chat', messages: USER });
  expect(Date.now() - otherStarted).toBeLessThan(800);
  // A burst far beyond what the queue can hold within the limits: some are refused with 429 and Retry-After.
  const results = await Promise.all(Array.from({ length: 30 }, () => web.chat.completions.create({ model: 'chat', messages: USER }).withResponse().then(() => 'ok', (e: unknown) => e)));
  const refused = results.filter((r): r is InstanceType<typeof OpenAI.RateLimitError> => r instanceof OpenAI.RateLimitError);
  expect(refused.length).toBeGreaterThan(0);
  expect(refused[0]!.message).toContain('client "web" is over its rate limit');
  expect(Number(refused[0]!.headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
}, 30_000);
