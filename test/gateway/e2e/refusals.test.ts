/**
 * Requests refused before any provider is asked are counted by reason and logged once, without the caller's token;
 * requests a provider answered are not counted again as refusals.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { gatewayOptions, GPT, resetFakes, startFakes, stopFakes, USER, type Fakes } from './fixtures.js';
import { metricValue, startTestGateway, type TestGateway } from '../../support/gateway.js';

const TOKEN = 'llmr-refusal-test-token-5d1c9e';
const WRONG = 'llmr-wrong-token-0a0a0a0a';

let fakes: Fakes;
let gateway: TestGateway;
beforeAll(async () => {
  fakes = await startFakes();
  gateway = await startTestGateway({
    ...gatewayOptions(fakes, { chain: [{ provider: 'openai' }] }),
    models: [{ name: 'chat', pin: GPT, maxInputTokens: 50, fallback: [{ provider: 'openai' }] }],
    clients: { web: TOKEN },
    maxBodyBytes: 4096,
  });
});
afterAll(async () => {
  await gateway?.stop();
  await stopFakes(fakes);
});

async function post(body: string, token: string | undefined, path = '/v1/chat/completions'): Promise<{ status: number; code: string | null }> {
  const response = await fetch(`${gateway.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body });
  const payload = (await response.json()) as { error?: { code: string | null } };
  return { status: response.status, code: payload.error?.code ?? null };
}

it('counts and logs every refusal by reason, and only refusals', async () => {
  resetFakes(fakes);
  const ok = JSON.stringify({ model: 'chat', messages: USER });
  expect(await post(ok, undefined)).toEqual({ status: 401, code: 'invalid_api_key' });
  expect(await post(ok, WRONG)).toEqual({ status: 401, code: 'invalid_api_key' });
  expect(await post(JSON.stringify({ model: 'nope', messages: USER }), TOKEN)).toEqual({ status: 404, code: 'model_not_found' });
  expect(await post('{"model": "chat", "messages": [', TOKEN)).toMatchObject({ status: 400 });
  expect(await post(JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'word '.repeat(400) }] }), TOKEN)).toEqual({ status: 400, code: 'context_length_exceeded' });
  expect(await post(JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'x'.repeat(5000) }] }), TOKEN)).toEqual({ status: 413, code: 'request_too_large' });
  expect(await post(ok, TOKEN, '/v1/completions')).toEqual({ status: 404, code: 'unknown_url' });
  // Answered by the provider: a request, not a refusal.
  fakes.openai.script({ kind: 'ok' });
  expect((await post(ok, TOKEN)).status).toBe(200);
  fakes.openai.script({ kind: 'auth_failed' });
  expect((await post(ok, TOKEN)).status).toBeGreaterThanOrEqual(400);

  const metrics = await gateway.scrape();
  expect(metricValue(metrics, 'llmroute_requests_refused_total', { reason: 'unauthenticated' })).toBe(2);
  expect(metricValue(metrics, 'llmroute_requests_refused_total', { reason: 'unknown_model' })).toBe(1);
  expect(metricValue(metrics, 'llmroute_requests_refused_total', { reason: 'invalid_request' })).toBe(1);
  expect(metricValue(metrics, 'llmroute_requests_refused_total', { reason: 'over_max_input_tokens' })).toBe(1);
  expect(metricValue(metrics, 'llmroute_requests_refused_total', { reason: 'body_too_large' })).toBe(1);
  expect(metricValue(metrics, 'llmroute_requests_refused_total', { reason: 'unknown_url' })).toBe(1);
  expect(metricValue(metrics, 'llmroute_requests_refused_total')).toBe(7);

  const refusals = gateway.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.msg === 'request refused');
  expect(refusals.map((line) => line.reason).sort()).toEqual(['body_too_large', 'invalid_request', 'over_max_input_tokens', 'unauthenticated', 'unauthenticated', 'unknown_model', 'unknown_url']);
  // The authenticated caller is named; nobody's token is written.
  expect(refusals.find((line) => line.reason === 'unknown_model')).toMatchObject({ client: 'web', status: 404, path: '/v1/chat/completions' });
  for (const line of gateway.logs) {
    expect(line).not.toContain(TOKEN);
    expect(line).not.toContain(WRONG);
  }
});
