/**
 * Every failure class of the taxonomy, end to end: the official OpenAI SDK calls a real gateway whose `chat` model
 * falls back OpenAI → Anthropic → Azure OpenAI across three fake providers, one per wire format. Each test asserts
 * what the client received (the answer, or the SDK's typed error carrying the provider's reason), how many attempts
 * each provider saw and how far apart, and that the call ended within its time budget; each runs streaming and not.
 */
import { describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI, { type APIError } from 'openai';
import { ask, askError, AZURE_DEPLOYMENT, CLAUDE, e2eSuite, gaps, gatewayFor, GPT, GPT_MINI, KEYS, TEXT, TIGHT } from './fixtures.js';

const suite = e2eSuite();

async function start(overrides: Parameters<typeof gatewayFor>[1] = {}): Promise<OpenAI> {
  suite.gateway = await gatewayFor(suite.fakes, overrides);
  return suite.gateway.client();
}

const header = (answer: { headers: Headers }, name: string) => answer.headers.get(name);

describe.each([
  ['non-streaming', false],
  ['streaming', true],
])('%s', (_mode, stream) => {
  describe('rate limited (429)', () => {
    it('waits the retry-after-ms the provider asked for, then retries the same provider', async () => {
      const client = await start();
      suite.fakes.openai.script([{ kind: 'rate_limited', retryAfterMs: 300 }, { kind: 'ok' }]);
      const answer = await ask(client, stream);
      expect(answer.text).toBe(TEXT);
      expect(answer.models).toEqual([GPT]);
      expect(header(answer, 'x-llmroute-provider')).toBe('openai');
      expect(header(answer, 'x-llmroute-attempts')).toBe('2');
      expect(suite.fakes.openai.attempts).toHaveLength(2);
      const [gap] = gaps(suite.fakes.openai.attempts);
      expect(gap).toBeGreaterThanOrEqual(295);
      expect(gap).toBeLessThan(800);
      expect(suite.fakes.anthropic.attempts).toHaveLength(0);
      expect(answer.ms).toBeLessThan(1500);
    });

    it('waits a retry-after given in seconds', async () => {
      const client = await start();
      suite.fakes.openai.script([{ kind: 'rate_limited', retryAfterSeconds: 1 }, { kind: 'ok' }]);
      const answer = await ask(client, stream);
      expect(answer.text).toBe(TEXT);
      expect(suite.fakes.openai.attempts).toHaveLength(2);
      expect(gaps(suite.fakes.openai.attempts)[0]).toBeGreaterThanOrEqual(995);
      expect(answer.ms).toBeLessThan(2500);
    });

    it('fails over when the provider wants a longer pause than maxDelayMs, and rate-limited everywhere is a RateLimitError with the reason', async () => {
      const client = await start({ retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 200, budgetPercent: 100 } });
      suite.fakes.openai.script({ kind: 'rate_limited', retryAfterSeconds: 30 });
      suite.fakes.anthropic.script({ kind: 'rate_limited', retryAfterMs: 5000 });
      suite.fakes.azure.script({ kind: 'rate_limited' });
      const { error, ms } = await askError(client, stream);
      expect(error).toBeInstanceOf(OpenAI.RateLimitError);
      const apiError = error as APIError;
      expect(apiError.status).toBe(429);
      // The last provider's own words, and that every provider was tried.
      expect(apiError.message).toContain('have exceeded token rate limit');
      expect(apiError.message).toContain('all 3 providers');
      // No wait of 30 s or 5 s: one attempt each on the first two, two on Azure (no retry-after: backoff).
      expect(suite.fakes.openai.attempts).toHaveLength(1);
      expect(suite.fakes.anthropic.attempts).toHaveLength(1);
      expect(suite.fakes.azure.attempts).toHaveLength(2);
      expect(ms).toBeLessThan(1000);
    });
  });

  describe('quota exhausted (insufficient_quota)', () => {
    it('is not retried, fails over, and cools the provider down so the next request skips it without an attempt', async () => {
      const client = await start();
      suite.fakes.openai.script({ kind: 'quota_exhausted' });
      const first = await ask(client, stream);
      expect(first.text).toBe(TEXT);
      expect(first.models).toEqual([CLAUDE]);
      expect(header(first, 'x-llmroute-provider')).toBe('anthropic');
      expect(header(first, 'x-llmroute-fallback-depth')).toBe('1');
      expect(suite.fakes.openai.attempts).toHaveLength(1);
      expect(suite.fakes.anthropic.attempts).toHaveLength(1);
      expect(first.ms).toBeLessThan(1000);

      const second = await ask(client, stream);
      expect(second.text).toBe(TEXT);
      expect(header(second, 'x-llmroute-provider')).toBe('anthropic');
      expect(header(second, 'x-llmroute-attempts')).toBe('1');
      expect(suite.fakes.openai.attempts).toHaveLength(1);
      expect(suite.fakes.anthropic.attempts).toHaveLength(2);
    });

    it('everywhere: a 429 insufficient_quota error with the provider reason', async () => {
      const client = await start({ chain: [{ provider: 'openai' }, { provider: 'azure' }] });
      suite.fakes.openai.script({ kind: 'quota_exhausted' });
      suite.fakes.azure.script({ kind: 'quota_exhausted' });
      const { error } = await askError(client, stream);
      expect(error).toBeInstanceOf(OpenAI.RateLimitError);
      expect((error as APIError).message).toContain('You exceeded your current quota');
      expect((error as APIError).type).toBe('insufficient_quota');
      expect(suite.fakes.openai.attempts).toHaveLength(1);
      expect(suite.fakes.azure.attempts).toHaveLength(1);
    });
  });

  describe('overloaded (503, 529)', () => {
    it('fails over at once, without retrying the overloaded provider', async () => {
      const client = await start();
      suite.fakes.openai.script({ kind: 'overloaded' });
      suite.fakes.anthropic.script({ kind: 'overloaded' });
      suite.fakes.azure.script({ kind: 'ok', model: GPT });
      const answer = await ask(client, stream);
      expect(answer.text).toBe(TEXT);
      expect(answer.models).toEqual([GPT]);
      expect(header(answer, 'x-llmroute-provider')).toBe('azure');
      expect(header(answer, 'x-llmroute-fallback-depth')).toBe('2');
      expect(header(answer, 'x-llmroute-attempts')).toBe('3');
      expect(suite.fakes.openai.attempts.map((a) => a.outcome)).toEqual(['overloaded']);
      expect(suite.fakes.anthropic.attempts.map((a) => a.outcome)).toEqual(['overloaded']);
      expect(suite.fakes.azure.attempts[0]?.deployment).toBe(AZURE_DEPLOYMENT);
      expect(suite.fakes.azure.attempts).toHaveLength(1);
      expect(answer.ms).toBeLessThan(1000);
    });
  });

  describe('server error (500)', () => {
    it('is retried with backoff on the same provider, then fails over', async () => {
      const client = await start();
      suite.fakes.openai.script({ kind: 'server_error' });
      const answer = await ask(client, stream);
      expect(answer.text).toBe(TEXT);
      expect(header(answer, 'x-llmroute-provider')).toBe('anthropic');
      expect(header(answer, 'x-llmroute-attempts')).toBe('4');
      // maxAttempts 3 on the primary, base delay 10 ms: full jitter keeps each gap under its ceiling (10, 20 ms).
      expect(suite.fakes.openai.attempts).toHaveLength(3);
      for (const gap of gaps(suite.fakes.openai.attempts)) expect(gap).toBeLessThan(250);
      expect(suite.fakes.anthropic.attempts).toHaveLength(1);
      expect(answer.ms).toBeLessThan(1500);
    });

    it('a retry that succeeds stays on the primary', async () => {
      const client = await start();
      suite.fakes.openai.script([{ kind: 'server_error', status: 502 }, { kind: 'ok' }]);
      const answer = await ask(client, stream);
      expect(answer.text).toBe(TEXT);
      expect(answer.models).toEqual([GPT]);
      expect(suite.fakes.openai.attempts).toHaveLength(2);
      expect(suite.fakes.anthropic.attempts).toHaveLength(0);
    });

    it('everywhere: a 5xx APIError carrying the last provider reason', async () => {
      const client = await start({ retry: { maxAttempts: 1, baseDelayMs: 10, maxDelayMs: 200, budgetPercent: 100 } });
      suite.fakes.openai.script({ kind: 'server_error' });
      suite.fakes.anthropic.script({ kind: 'server_error' });
      suite.fakes.azure.script({ kind: 'server_error', status: 504 });
      const { error } = await askError(client, stream);
      expect(error).toBeInstanceOf(OpenAI.InternalServerError);
      expect((error as APIError).status).toBe(502);
      expect((error as APIError).message).toContain('The server had an error while processing your request');
      expect((error as APIError).message).toContain('provider "azure"');
    });
  });

  describe('connection reset before a response', () => {
    it('is retried on the same provider', async () => {
      const client = await start();
      suite.fakes.openai.script([{ kind: 'connection_reset' }, { kind: 'ok' }]);
      const answer = await ask(client, stream);
      expect(answer.text).toBe(TEXT);
      expect(header(answer, 'x-llmroute-provider')).toBe('openai');
      expect(suite.fakes.openai.attempts.map((a) => a.outcome)).toEqual(['connection_reset', 'ok']);
      expect(gaps(suite.fakes.openai.attempts)[0]).toBeLessThan(250);
      expect(suite.fakes.anthropic.attempts).toHaveLength(0);
      expect(answer.ms).toBeLessThan(1000);
    });
  });

  describe('timeout: no first token', () => {
    it('fails over after firstTokenSeconds and never retries the silent provider', async () => {
      const client = await start({ timeouts: TIGHT });
      suite.fakes.openai.script({ kind: 'timeout' });
      const answer = await ask(client, stream);
      expect(answer.text).toBe(TEXT);
      expect(header(answer, 'x-llmroute-provider')).toBe('anthropic');
      expect(suite.fakes.anthropic.attempts).toHaveLength(1);
      // The fallback was asked once the 0.5 s first-token limit expired, not before, not much later.
      const waited = (suite.fakes.anthropic.attempts[0]?.at ?? 0) - (suite.fakes.openai.attempts[0]?.at ?? 0);
      expect(waited).toBeGreaterThanOrEqual(490);
      expect(waited).toBeLessThan(1000);
      expect(answer.ms).toBeLessThan(1500);
      await sleep(100);
      expect(suite.fakes.openai.attempts).toHaveLength(1);
      // The gateway hung up on the silent provider instead of leaving the request open.
      expect(suite.fakes.openai.attempts[0]?.aborted).toBe(true);
    });

    it('a slow first byte counts too', async () => {
      const client = await start({ timeouts: TIGHT });
      suite.fakes.openai.script({ kind: 'ok', delayMs: 2000 });
      const answer = await ask(client, stream);
      expect(header(answer, 'x-llmroute-provider')).toBe('anthropic');
      expect(suite.fakes.openai.attempts).toHaveLength(1);
      expect(answer.ms).toBeLessThan(1500);
    });

    it('everywhere: a 504 timeout error', async () => {
      const client = await start({ chain: [{ provider: 'openai' }, { provider: 'anthropic', model: CLAUDE }], timeouts: TIGHT });
      suite.fakes.openai.script({ kind: 'timeout' });
      suite.fakes.anthropic.script({ kind: 'timeout' });
      const { error, ms } = await askError(client, stream);
      expect(error).toBeInstanceOf(OpenAI.APIError);
      expect((error as APIError).status).toBe(504);
      expect((error as APIError).message).toMatch(/sent no first token within 0.5s/);
      expect(suite.fakes.openai.attempts).toHaveLength(1);
      expect(suite.fakes.anthropic.attempts).toHaveLength(1);
      expect(ms).toBeGreaterThanOrEqual(950);
      expect(ms).toBeLessThan(1800);
    });
  });

  describe('auth failure (401)', () => {
    const BAD = 'sk-openai-revoked-aaaaaaaaaaaaaaaa';
    const GOOD = 'sk-openai-current-bbbbbbbbbbbbbbbb';

    it("uses the provider's next key, and sets the rejected key aside for later requests", async () => {
      const client = await start({ keys: { openai: [BAD, GOOD], anthropic: [KEYS.anthropic], azure: [KEYS.azure] } });
      suite.fakes.openai.script((attempt) => (attempt.key === BAD ? { kind: 'auth_failed' } : { kind: 'ok' }));
      const first = await ask(client, stream);
      expect(first.text).toBe(TEXT);
      expect(header(first, 'x-llmroute-provider')).toBe('openai');
      expect(suite.fakes.openai.attempts.map((a) => a.key)).toEqual([BAD, GOOD]);
      // The next key is tried at once: no pause in between.
      expect(gaps(suite.fakes.openai.attempts)[0]).toBeLessThan(500);

      const second = await ask(client, stream);
      expect(second.text).toBe(TEXT);
      expect(suite.fakes.openai.attempts.map((a) => a.key)).toEqual([BAD, GOOD, GOOD]);
      expect(suite.fakes.anthropic.attempts).toHaveLength(0);
    });

    it('fails over once every key of the provider was rejected', async () => {
      const BAD2 = 'sk-openai-revoked-cccccccccccccccc';
      const client = await start({ keys: { openai: [BAD, BAD2], anthropic: [KEYS.anthropic], azure: [KEYS.azure] } });
      suite.fakes.openai.script({ kind: 'auth_failed' });
      const first = await ask(client, stream);
      expect(first.text).toBe(TEXT);
      expect(header(first, 'x-llmroute-provider')).toBe('anthropic');
      expect(suite.fakes.openai.attempts.map((a) => a.key)).toEqual([BAD, BAD2]);
      expect(suite.fakes.anthropic.attempts.map((a) => a.key)).toEqual([KEYS.anthropic]);

      // Both keys are set aside: the provider is skipped without an attempt.
      const second = await ask(client, stream);
      expect(header(second, 'x-llmroute-provider')).toBe('anthropic');
      expect(suite.fakes.openai.attempts).toHaveLength(2);
      expect(suite.fakes.anthropic.attempts).toHaveLength(2);
      expect(second.ms).toBeLessThan(1000);
    });
  });

  describe('context length exceeded', () => {
    it('is not retried on the same model, skips later steps with that model, and tries the next model', async () => {
      // The same model at Azure cannot hold the prompt either; the smaller-window mini model is a different model.
      const client = await start({ chain: [{ provider: 'openai' }, { provider: 'azure' }, { provider: 'openai', model: GPT_MINI }] });
      suite.fakes.openai.script((attempt) => ((attempt.body as { model?: string }).model === GPT ? { kind: 'context_length_exceeded' } : { kind: 'ok' }));
      const answer = await ask(client, stream);
      expect(answer.text).toBe(TEXT);
      expect(answer.models).toEqual([GPT_MINI]);
      expect(header(answer, 'x-llmroute-provider')).toBe('openai');
      expect(header(answer, 'x-llmroute-fallback-depth')).toBe('2');
      expect(header(answer, 'x-llmroute-attempts')).toBe('2');
      expect(suite.fakes.openai.attempts.map((a) => (a.body as { model: string }).model)).toEqual([GPT, GPT_MINI]);
      expect(suite.fakes.azure.attempts).toHaveLength(0);
      expect(answer.ms).toBeLessThan(1000);
    });

    it('with no larger model left: a 400 carrying the provider reason', async () => {
      const client = await start({ chain: [{ provider: 'openai' }, { provider: 'azure' }] });
      suite.fakes.openai.script({ kind: 'context_length_exceeded' });
      const { error } = await askError(client, stream);
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect((error as APIError).message).toContain("This model's maximum context length is 128000 tokens");
      expect((error as APIError).code).toBe('context_length_exceeded');
      expect(suite.fakes.openai.attempts).toHaveLength(1);
      expect(suite.fakes.azure.attempts).toHaveLength(0);
    });
  });

  describe('content filtered', () => {
    it("is neither retried nor failed over: a 400 with the provider's reason", async () => {
      const client = await start({ chain: [{ provider: 'azure' }, { provider: 'openai' }, { provider: 'anthropic', model: CLAUDE }] });
      suite.fakes.azure.script({ kind: 'content_filtered', category: 'violence' });
      const { error, ms } = await askError(client, stream);
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      const apiError = error as APIError;
      expect(apiError.status).toBe(400);
      expect(apiError.message).toContain("Azure OpenAI's content management policy");
      expect(apiError.message).toContain('violence (high)');
      expect(apiError.code).toBe('content_filter');
      expect(suite.fakes.azure.attempts).toHaveLength(1);
      expect(suite.fakes.openai.attempts).toHaveLength(0);
      expect(suite.fakes.anthropic.attempts).toHaveLength(0);
      expect(ms).toBeLessThan(1000);
    });
  });

  describe('content filtered while answering', () => {
    it("ends the answer with the provider's reason, and does not fail over", async () => {
      const client = await start({ chain: [{ provider: 'azure' }, { provider: 'openai' }] });
      suite.fakes.azure.script({ kind: 'content_filtered', during: 'completion', category: 'self_harm' });
      const { error } = await askError(client, stream);
      // Streaming, content had reached the client: the SDK raises mid-iteration. Otherwise a 400.
      expect(error).toBeInstanceOf(stream ? OpenAI.APIError : OpenAI.BadRequestError);
      expect((error as APIError).message).toContain('filtered');
      expect((error as APIError).message).toContain('self_harm (high)');
      expect(suite.fakes.azure.attempts).toHaveLength(1);
      expect(suite.fakes.openai.attempts).toHaveLength(0);
    });
  });

  describe('bad request (400)', () => {
    it('is neither retried nor failed over: a 400 with the provider message', async () => {
      const client = await start();
      // The primary refuses a conversation that ends with an assistant turn; another provider would be asked the same.
      const messages: OpenAI.ChatCompletionMessageParam[] = [
        { role: 'user', content: 'Say hello.' },
        { role: 'assistant', content: 'Hello' },
      ];
      const { error, ms } = await askError(client, stream, { messages });
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect((error as APIError).message).toContain('does not support assistant message prefill');
      expect(suite.fakes.openai.attempts.map((a) => a.outcome)).toEqual(['prefill_rejected']);
      expect(suite.fakes.anthropic.attempts).toHaveLength(0);
      expect(suite.fakes.azure.attempts).toHaveLength(0);
      expect(ms).toBeLessThan(1000);
    });
  });
});
