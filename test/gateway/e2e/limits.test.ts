/**
 * Caps and per-client rate limits through the OpenAI SDK: `max_tokens` over the model's `maxOutputTokens` is clamped
 * or refused as the model says, and a client over its `limits` waits in the queue, then gets 429 with Retry-After.
 */
import { expect, it } from '@jest/globals';
import OpenAI from 'openai';
import { e2eSuite, gatewayFor, GPT, TIMEOUTS, USER } from './fixtures.js';

const suite = e2eSuite();

const capped = (overMaxOutputTokens: 'clamp' | 'reject') => [{ name: 'chat', pin: GPT, maxOutputTokens: 50, overMaxOutputTokens, timeouts: TIMEOUTS, fallback: [{ provider: 'openai' }] }];

it('clamps max_tokens over the cap, and sends the cap when the client sets none', async () => {
  suite.gateway = await gatewayFor(suite.fakes, { models: capped('clamp') });
  await suite.gateway.client().chat.completions.create({ model: 'chat', messages: USER, max_tokens: 500 });
  await suite.gateway.client().chat.completions.create({ model: 'chat', messages: USER });
  const sent = suite.fakes.openai.attempts.map((a) => (a.body as { max_tokens?: number }).max_tokens);
  expect(sent).toEqual([50, 50]);
});

it('refuses max_tokens over the cap with 400 saying by how much, before any provider is asked', async () => {
  suite.gateway = await gatewayFor(suite.fakes, { models: capped('reject') });
  const error = await suite.gateway.client().chat.completions.create({ model: 'chat', messages: USER, max_tokens: 80 }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(OpenAI.BadRequestError);
  expect((error as InstanceType<typeof OpenAI.BadRequestError>).message).toContain('max_tokens is 80, 30 over model "chat"\'s limit of 50');
  expect((error as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('max_tokens_exceeded');
  expect(suite.fakes.openai.attempts).toHaveLength(0);
  await suite.gateway.client().chat.completions.create({ model: 'chat', messages: USER, max_tokens: 50 });
  expect(suite.fakes.openai.attempts).toHaveLength(1);
});

it('holds a client to its requests per minute: a burst waits in the queue, and what cannot wait gets 429 with Retry-After', async () => {
  suite.gateway = await gatewayFor(suite.fakes, { clients: { web: 'token-web', batch: 'token-batch' }, clientLimits: { web: { requestsPerMinute: 60 } } });
  const web = suite.gateway.client('token-web');
  const started = Date.now();
  // 60 per minute is one a second: the second request waits about a second instead of failing.
  await web.chat.completions.create({ model: 'chat', messages: USER });
  await web.chat.completions.create({ model: 'chat', messages: USER });
  expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  // Another client is not held back by web's limit.
  const otherStarted = Date.now();
  await suite.gateway.client('token-batch').chat.completions.create({ model: 'chat', messages: USER });
  expect(Date.now() - otherStarted).toBeLessThan(800);
  // A burst far beyond what the queue can hold within the limits: some are refused with 429 and Retry-After.
  const results = await Promise.all(Array.from({ length: 30 }, () => web.chat.completions.create({ model: 'chat', messages: USER }).withResponse().then(() => 'ok', (e: unknown) => e)));
  const refused = results.filter((r): r is InstanceType<typeof OpenAI.RateLimitError> => r instanceof OpenAI.RateLimitError);
  expect(refused.length).toBeGreaterThan(0);
  expect(refused[0]!.message).toContain('client "web" is over its rate limit');
  expect(Number(refused[0]!.headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
}, 30_000);
