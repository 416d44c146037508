/**
 * Flags and coalescing end to end, through the official SDK. A flag overriding the pin splits users by a sticky
 * hash: the fake provider records which model each request asked for, so the split, its stickiness and its
 * monotonic growth across a hot reload are observed from outside the gateway. Coalescing: identical deterministic
 * requests in flight together cost one upstream call.
 */
import { describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import type OpenAI from 'openai';
import type { LLMRouteInput } from '../../../src/api/schema.js';
import { metricValue, type TestGateway } from '../../support/gateway.js';
import { e2eSuite, gatewayFor, GPT, GPT_MINI, TEXT, TIMEOUTS, USER } from './fixtures.js';

type Flag = NonNullable<LLMRouteInput['spec']['flags']>[number];

const FLAG = 'mini-trial';
const flag = (percent: number): Flag => ({ name: FLAG, stickyBy: 'user', percent, set: { models: { chat: { pin: GPT_MINI } } } });

const suite = e2eSuite();

async function start(percent: number, reloadIntervalMs?: number): Promise<TestGateway> {
  suite.gateway = await gatewayFor(suite.fakes, {
    models: [{ name: 'chat', pin: GPT, timeouts: TIMEOUTS, fallback: [{ provider: 'openai' }] }],
    flags: [flag(percent)],
    ...(reloadIntervalMs !== undefined ? { reloadIntervalMs } : {}),
  });
  return suite.gateway;
}

interface Seen {
  user: string;
  /** The model the fake was asked for. */
  asked: string;
  /** The model the client was told answered. */
  answered: string;
  flags: string | null;
}

/** One request per user, `concurrency` at a time; what the provider was asked and what the client saw, per user. */
async function askAs(client: OpenAI, users: readonly string[], concurrency = 20): Promise<Map<string, Seen>> {
  const seen = new Map<string, Seen>();
  let next = 0;
  const worker = async () => {
    while (next < users.length) {
      const user = users[next++] as string;
      const { data, response } = await client.chat.completions.create({ model: 'chat', messages: USER, user }).withResponse();
      seen.set(user, { user, asked: '', answered: data.model, flags: response.headers.get('x-llmroute-flags') });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  // What the provider was asked comes from the fake's record of this round (one attempt per user), not the answer.
  const round = suite.fakes.openai.attempts.slice(-users.length);
  if (suite.fakes.openai.attempts.length % users.length !== 0) throw new Error('the provider saw more attempts than requests');
  for (const attempt of round) {
    const body = attempt.body as { user: string; model: string };
    const entry = seen.get(body.user);
    if (!entry || entry.asked !== '') throw new Error(`the provider saw user ${body.user} twice in one round`);
    entry.asked = body.model;
  }
  return seen;
}

const usersFrom = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
const inFlag = (seen: Map<string, Seen>) => new Set([...seen.values()].filter((s) => s.asked === GPT_MINI).map((s) => s.user));

describe('a flag at 50% overriding the pin', () => {
  it('splits users about evenly, keeps each user on one variant, names the flag in a header and in metrics', async () => {
    const client = (await start(50)).client();
    const users = usersFrom('user', 200);
    const first = await askAs(client, users);
    const flagged = inFlag(first);
    expect(flagged.size).toBeGreaterThanOrEqual(70);
    expect(flagged.size).toBeLessThanOrEqual(130);
    for (const seen of first.values()) {
      const on = flagged.has(seen.user);
      // Only two variants exist: the pin and the flag's; the client is told which answered, and the header says why.
      expect(seen.asked).toBe(on ? GPT_MINI : GPT);
      expect(seen.answered).toBe(seen.asked);
      expect(seen.flags).toBe(on ? FLAG : null);
    }

    // The same users again, twice, in another order: every one lands where it did.
    for (const order of [[...users].reverse(), users]) {
      const again = await askAs(client, order);
      for (const user of users) expect(again.get(user)?.asked).toBe(first.get(user)?.asked);
    }

    const metrics = await suite.gateway!.scrape();
    expect(metricValue(metrics, 'llmroute_requests_total', { model: 'chat', variant: FLAG, outcome: 'success' })).toBe(3 * flagged.size);
    expect(metricValue(metrics, 'llmroute_requests_total', { model: 'chat', variant: 'baseline', outcome: 'success' })).toBe(3 * (200 - flagged.size));
    expect(metricValue(metrics, 'llmroute_requests_total')).toBe(600);
  });

  it('raised from 10% to 60% by rewriting the config, keeps every user that was in, without a restart', async () => {
    const g = await start(10, 50);
    const client = g.client();
    const users = usersFrom('member', 300);
    const at10 = inFlag(await askAs(client, users));
    expect(at10.size).toBeGreaterThanOrEqual(0.03 * 300);
    expect(at10.size).toBeLessThanOrEqual(0.2 * 300);

    const raised = structuredClone(g.config);
    raised.flags = raised.flags.map((f) => (f.name === FLAG ? { ...f, percent: 60 } : f));
    await g.writeConfig(JSON.stringify(raised, null, 2));
    const deadline = Date.now() + 5000;
    while (metricValue(await g.scrape(), 'llmroute_config_reloads_total', { result: 'success' }) < 1) {
      if (Date.now() > deadline) throw new Error('the config was not reloaded');
      await sleep(20);
    }

    const at60 = inFlag(await askAs(client, users));
    expect(at60.size).toBeGreaterThanOrEqual(0.45 * 300);
    expect(at60.size).toBeLessThanOrEqual(0.75 * 300);
    // Monotonic: growing the share only adds users; nobody who was in is sent back to the baseline.
    for (const user of at10) expect(at60.has(user)).toBe(true);
    expect(at60.size).toBeGreaterThan(at10.size);
    // The same process served both rounds: its reload counter saw exactly the one change.
    expect(metricValue(await g.scrape(), 'llmroute_config_reloads_total', { result: 'success' })).toBe(1);
  });
});

describe('coalescing', () => {
  const ask = (client: OpenAI, temperature?: number) =>
    client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'What is 2 + 2?' }], ...(temperature !== undefined ? { temperature } : {}) }).withResponse();

  it('10 identical concurrent requests at temperature 0: one upstream attempt, ten answers', async () => {
    const g = await start(0);
    suite.fakes.openai.script({ kind: 'ok', delayMs: 300 });
    const client = g.client();
    const answers = await Promise.all(Array.from({ length: 10 }, () => ask(client, 0)));
    expect(suite.fakes.openai.attempts).toHaveLength(1);
    for (const { data, response } of answers) {
      expect(response.status).toBe(200);
      expect(data.choices[0]?.message.content).toBe(TEXT);
      expect(data.model).toBe(GPT);
    }
    const metrics = await g.scrape();
    expect(metricValue(metrics, 'llmroute_coalesced_requests_total', { model: 'chat' })).toBe(9);
  });

  it('the control: the same requests without temperature 0 each go upstream', async () => {
    const g = await start(0);
    suite.fakes.openai.script({ kind: 'ok', delayMs: 300 });
    const client = g.client();
    const answers = await Promise.all(Array.from({ length: 10 }, () => ask(client)));
    expect(answers.every(({ data }) => data.choices[0]?.message.content === TEXT)).toBe(true);
    expect(suite.fakes.openai.attempts).toHaveLength(10);
    expect(metricValue(await g.scrape(), 'llmroute_coalesced_requests_total')).toBe(0);
  });
});
