/**
 * Shared set-up of the gateway end-to-end suites: three fake providers, one per wire format, and a route whose
 * `chat` model falls back across them. Every timeout is short so that the suites stay fast.
 */
import { afterAll, afterEach, beforeAll } from '@jest/globals';
import type OpenAI from 'openai';
import type { LLMRouteInput } from '../../../src/api/schema.js';
import { startFakeProvider, type Attempt, type FakeProvider } from '../../support/fake-provider.js';
import { startTestGateway, type TestGateway, type TestGatewayOptions } from '../../support/gateway.js';

type Spec = LLMRouteInput['spec'];

export const GPT = 'gpt-4o-2024-08-06';
export const GPT_MINI = 'gpt-4o-mini-2024-07-18';
export const CLAUDE = 'claude-sonnet-4-20250514';
export const AZURE_DEPLOYMENT = 'gpt4o-prod';
export const TEXT = 'Hello from the fake provider.';

export const KEYS = {
  openai: 'sk-openai-primary-0123456789abcdef',
  anthropic: 'sk-ant-fallback-0123456789abcdef',
  azure: 'azure-key-0123456789abcdef0123',
};

export interface Fakes {
  openai: FakeProvider;
  anthropic: FakeProvider;
  azure: FakeProvider;
}

export async function startFakes(): Promise<Fakes> {
  const [openai, anthropic, azure] = await Promise.all([startFakeProvider({ prefill: false }), startFakeProvider({ prefill: true }), startFakeProvider({ prefill: false })]);
  return { openai, anthropic, azure };
}

export async function stopFakes(fakes: Fakes | undefined): Promise<void> {
  if (!fakes) return;
  await Promise.all([fakes.openai.stop(), fakes.anthropic.stop(), fakes.azure.stop()]);
}

export function resetFakes(fakes: Fakes): void {
  fakes.openai.reset();
  fakes.anthropic.reset();
  fakes.azure.reset();
}

export interface Suite {
  /** Started before the file's first test, reset after each test, stopped after the last. */
  readonly fakes: Fakes;
  /** The test's gateway, if it started one: stopped after the test. */
  gateway: TestGateway | undefined;
}

/** Registers the hooks of an end-to-end test file: the three fakes for the whole file, at most one gateway per test. */
export function e2eSuite(): Suite {
  let fakes: Fakes | undefined;
  const suite: Suite = {
    get fakes(): Fakes {
      if (!fakes) throw new Error('the fakes start in beforeAll: use them inside a test or a hook');
      return fakes;
    },
    gateway: undefined,
  };
  beforeAll(async () => {
    fakes = await startFakes();
  });
  afterEach(async () => {
    await suite.gateway?.stop();
    suite.gateway = undefined;
    if (fakes) resetFakes(fakes);
  });
  afterAll(() => stopFakes(fakes));
  return suite;
}

export function providers(fakes: Fakes): Spec['providers'] {
  return [
    { name: 'openai', type: 'openai', baseURL: `${fakes.openai.url}/v1` },
    { name: 'anthropic', type: 'anthropic', baseURL: fakes.anthropic.url },
    { name: 'azure', type: 'azure-openai', baseURL: fakes.azure.url, apiVersion: '2024-10-21', deployments: { [GPT]: AZURE_DEPLOYMENT, [GPT_MINI]: 'gpt4o-mini' } },
  ];
}

export type Step = { provider: string; model?: string };

/** OpenAI primary, Anthropic (Claude) fallback, Azure (same model as the primary) last. */
export const DEFAULT_CHAIN: Step[] = [{ provider: 'openai' }, { provider: 'anthropic', model: CLAUDE }, { provider: 'azure' }];

/**
 * Relaxed enough that a busy CI machine never trips them by accident; tests about time limits pass `TIGHT`, short
 * enough to keep those tests fast.
 */
export const TIMEOUTS = { firstTokenSeconds: 2, idleSeconds: 1, totalSeconds: 10 };
export const TIGHT = { firstTokenSeconds: 0.5, idleSeconds: 0.3 };

export function gatewayOptions(fakes: Fakes, overrides: Partial<TestGatewayOptions> & { chain?: Step[]; timeouts?: Partial<typeof TIMEOUTS> } = {}): TestGatewayOptions {
  const { chain = DEFAULT_CHAIN, timeouts, ...rest } = overrides;
  return {
    providers: providers(fakes),
    models: [{ name: 'chat', pin: GPT, timeouts: { ...TIMEOUTS, ...timeouts }, fallback: chain }],
    retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 2000, budgetPercent: 100 },
    circuitBreaker: { failureRatio: 0.5, minRequests: 100, windowSeconds: 30, openSeconds: 30 },
    keys: { openai: [KEYS.openai], anthropic: [KEYS.anthropic], azure: [KEYS.azure] },
    ...rest,
  };
}

export async function gatewayFor(fakes: Fakes, overrides: Parameters<typeof gatewayOptions>[1] = {}): Promise<TestGateway> {
  return startTestGateway(gatewayOptions(fakes, overrides));
}

/** The gaps between consecutive attempts, in ms. */
export function gaps(attempts: Attempt[]): number[] {
  return attempts.slice(1).map((a, i) => a.at - (attempts[i] as Attempt).at);
}

export const USER = [{ role: 'user' as const, content: 'Say hello.' }];

export interface Answered {
  text: string;
  /** The `model` the client was told answered (every chunk's, when streaming: they must agree). */
  models: string[];
  headers: Headers;
  ms: number;
}

/**
 * One chat completion through the official SDK, streaming or not; resolves with what the client received, or
 * rejects with the SDK's error (for a stream, whether it failed before or during the iteration).
 */
export async function ask(client: OpenAI, stream: boolean, extra: { messages?: OpenAI.ChatCompletionMessageParam[]; model?: string } = {}): Promise<Answered> {
  const started = Date.now();
  const params = { model: extra.model ?? 'chat', messages: extra.messages ?? USER };
  if (!stream) {
    const { data, response } = await client.chat.completions.create({ ...params, stream: false }).withResponse();
    return { text: data.choices[0]?.message.content ?? '', models: [data.model], headers: response.headers, ms: Date.now() - started };
  }
  const { data, response } = await client.chat.completions.create({ ...params, stream: true }).withResponse();
  let text = '';
  const models = new Set<string>();
  for await (const chunk of data) {
    models.add(chunk.model);
    text += chunk.choices[0]?.delta.content ?? '';
  }
  return { text, models: [...models], headers: response.headers, ms: Date.now() - started };
}

/** The error a call rejected with, timed; fails the test when the call succeeded. */
export async function askError(client: OpenAI, stream: boolean, extra: Parameters<typeof ask>[2] = {}): Promise<{ error: unknown; ms: number }> {
  const started = Date.now();
  try {
    const answer = await ask(client, stream, extra);
    throw new Error(`expected the call to fail, it answered ${JSON.stringify(answer.text)}`);
  } catch (error) {
    return { error, ms: Date.now() - started };
  }
}
