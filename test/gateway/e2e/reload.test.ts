/**
 * Hot reload under load. A key rotated in its file (as the kubelet updates a mounted Secret) takes effect without a
 * restart and without failing a request. A config file replaced by something invalid changes nothing: the previous
 * config keeps serving, and the failure is logged and counted in `llmroute_config_reloads_total{result="failure"}`.
 */
import { describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI from 'openai';
import { metricValue } from '../../support/gateway.js';
import { ask, e2eSuite, gatewayFor, KEYS, TEXT } from './fixtures.js';
import { waitFor } from '../../support/poll.js';

const suite = e2eSuite();

const until = (condition: () => Promise<boolean>, message: string) => waitFor(condition, { message, intervalMs: 20, timeoutMs: 3000 });

/** Runs `total` requests, `concurrency` at a time; `onDone(n)` after the nth completes. */
async function load(client: OpenAI, total: number, concurrency: number, onDone: (n: number) => Promise<void> | void): Promise<{ ok: number; errors: unknown[] }> {
  let next = 0;
  let done = 0;
  let ok = 0;
  const errors: unknown[] = [];
  const worker = async () => {
    while (next < total) {
      const n = next++;
      try {
        const answer = await ask(client, n % 2 === 0);
        if (answer.text === TEXT) ok++;
        else errors.push(new Error(`request ${n} answered ${JSON.stringify(answer.text)}`));
      } catch (error) {
        errors.push(error);
      }
      await onDone(++done);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { ok, errors };
}

describe('key rotation under load', () => {
  it('switches to the new key mid-way without failing a request', async () => {
    const OLD = KEYS.openai;
    const NEW = 'sk-openai-rotated-fedcba9876543210';
    suite.gateway = await gatewayFor(suite.fakes, { reloadIntervalMs: 25 });
    // The provider accepts both keys during the overlap, and nothing else.
    suite.fakes.openai.script((attempt) => (attempt.key === OLD || attempt.key === NEW ? { kind: 'ok', chunkDelayMs: 2 } : { kind: 'auth_failed' }));
    let rotatedAt = 0;
    const result = await load(suite.gateway.client(), 80, 4, async (n) => {
      if (n === 30) {
        await suite.gateway!.writeKey('openai', NEW);
        rotatedAt = Date.now();
      }
    });
    expect(result.errors).toEqual([]);
    expect(result.ok).toBe(80);
    // Every request was answered by the primary: none needed a fallback during the rotation.
    expect(suite.fakes.openai.attempts).toHaveLength(80);
    expect(suite.fakes.anthropic.attempts).toHaveLength(0);
    const keys = suite.fakes.openai.attempts.map((a) => a.key);
    expect(new Set(keys)).toEqual(new Set([OLD, NEW]));
    // Old first, new after: the switch happened once, within a few reload intervals of the write.
    expect(keys.slice(0, 30).every((k) => k === OLD)).toBe(true);
    expect(keys.slice(-30).every((k) => k === NEW)).toBe(true);
    const firstNew = suite.fakes.openai.attempts.find((a) => a.key === NEW);
    expect((firstNew?.at ?? 0) - rotatedAt).toBeLessThan(500);
    // A request that started before the switch may still arrive with the old key, never long after.
    const lateOld = suite.fakes.openai.attempts.filter((a) => a.key === OLD && a.index > (firstNew?.index ?? 0));
    expect(lateOld.length).toBeLessThanOrEqual(4);
    const metrics = await suite.gateway.scrape();
    expect(metricValue(metrics, 'llmroute_key_reloads_total', { provider: 'openai', result: 'changed' })).toBe(1);
  });
});

describe('a bad config reload', () => {
  it('changes nothing, is logged, and counts as a failure; a good one then applies', async () => {
    suite.gateway = await gatewayFor(suite.fakes, { reloadIntervalMs: 25 });
    const client = suite.gateway.client();
    const failures = async () => metricValue(await suite.gateway!.scrape(), 'llmroute_config_reloads_total', { result: 'failure' });
    const successes = async () => metricValue(await suite.gateway!.scrape(), 'llmroute_config_reloads_total', { result: 'success' });
    expect(await failures()).toBe(0);

    // Not JSON at all.
    await suite.gateway.writeConfig('{"version": "llmroute.dev/gateway-config/v1", ');
    await until(async () => (await failures()) === 1, 'one failed reload');
    expect((await ask(client, false)).text).toBe(TEXT);
    expect((await ask(client, true)).text).toBe(TEXT);

    // JSON, but not a valid config; had it applied, `chat` would be gone and the primary would be Azure.
    const invalid = structuredClone(suite.gateway.config);
    invalid.models = [{ ...(invalid.models[0] as (typeof invalid.models)[number]), name: 'renamed', fallback: [{ provider: 'azure', model: 'x' }], timeouts: { firstTokenSeconds: -1, idleSeconds: 1, totalSeconds: 1 } }];
    await suite.gateway.writeConfig(JSON.stringify(invalid));
    await until(async () => (await failures()) === 2, 'two failed reloads');
    const answer = await ask(client, false);
    expect(answer.text).toBe(TEXT);
    expect(answer.headers.get('x-llmroute-provider')).toBe('openai');
    await expect(ask(client, false, { model: 'renamed' })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    expect(suite.fakes.azure.attempts).toHaveLength(0);
    // Each bad version is reported once, not on every poll.
    await sleep(100);
    expect(await failures()).toBe(2);
    const rejected = suite.gateway.logs.filter((line) => line.includes('config rejected; the previous config keeps serving'));
    expect(rejected).toHaveLength(2);
    expect(rejected[1]).toContain('firstTokenSeconds');
    expect(await successes()).toBe(0);

    // The control: a valid change does apply, so the checks above could have failed.
    const valid = structuredClone(suite.gateway.config);
    valid.models = [{ ...(valid.models[0] as (typeof valid.models)[number]), name: 'renamed' }];
    await suite.gateway.writeConfig(JSON.stringify(valid));
    await until(async () => (await successes()) === 1, 'one successful reload');
    expect((await ask(client, false, { model: 'renamed' })).text).toBe(TEXT);
    await expect(ask(client, false)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });
});
