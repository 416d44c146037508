/**
 * Secrets never leave the gateway: no provider key and no client token appears in any log line, in any error
 * returned to a client (even when a provider quotes the rejected key back in its error), or in the metrics. Keys
 * appear in logs only as fingerprints.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { type APIError } from 'openai';
import { fingerprint } from '../../../src/api/names.js';
import { ask, askError, CLAUDE, GPT, gatewayOptions, KEYS, providers, startFakes, stopFakes, TEXT, USER, type Fakes } from './fixtures.js';
import { startTestGateway } from '../../support/gateway.js';

let fakes: Fakes;
let leaky: Server;
let leakyURL: string;
beforeAll(async () => {
  fakes = await startFakes();
  // A provider that quotes the whole rejected key back, as some proxies and self-hosted servers do.
  leaky = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const key = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `Incorrect API key provided: ${key}. Check the key ${key} and retry.`, type: 'invalid_request_error', param: null, code: 'invalid_api_key' } }));
    });
  });
  await new Promise<void>((resolve) => leaky.listen(0, '127.0.0.1', resolve));
  leakyURL = `http://127.0.0.1:${(leaky.address() as AddressInfo).port}/v1`;
});
afterAll(async () => {
  await stopFakes(fakes);
  await new Promise((resolve) => leaky.close(resolve));
});

it('no key or client token in logs, client errors or metrics', async () => {
  const TOKEN = 'llmr-secret-client-token-3e8f0a2b6c';
  const WRONG_TOKEN = 'llmr-guessed-token-77aa11bb22cc';
  const LEAKY_KEYS = ['sk-leaky-first-key-111111111111111', 'sk-leaky-second-key-22222222222222'];
  const LONE_KEY = 'sk-lone-key-333333333333333333333';
  const ROTATED = 'sk-ant-rotated-444444444444444444';
  const secrets = [TOKEN, WRONG_TOKEN, ...LEAKY_KEYS, LONE_KEY, ROTATED, KEYS.openai, KEYS.anthropic, KEYS.azure];

  const base = gatewayOptions(fakes);
  const gateway = await startTestGateway({
    ...base,
    providers: [...providers(fakes), { name: 'leaky', type: 'openai', baseURL: leakyURL }, { name: 'lone', type: 'openai', baseURL: leakyURL }],
    models: [
      { name: 'chat', pin: GPT, fallback: [{ provider: 'leaky' }, { provider: 'anthropic', model: CLAUDE }] },
      { name: 'lone', pin: GPT, fallback: [{ provider: 'lone' }] },
    ],
    keys: { ...base.keys, leaky: LEAKY_KEYS, lone: [LONE_KEY] },
    clients: { web: TOKEN },
    reloadIntervalMs: 25,
  });
  const seen: string[] = [];
  try {
    const client = gateway.client(TOKEN);
    // Both keys of the primary are rejected (and quoted back); the fallback answers.
    for (const stream of [false, true]) {
      const answer = await ask(client, stream);
      expect(answer.text).toBe(TEXT);
      expect(answer.headers.get('x-llmroute-provider')).toBe('anthropic');
    }
    // A provider whose only key is rejected: the client's error carries the reason, with the key redacted; then
    // the key is set aside and the next request is refused without asking the provider.
    for (const [stream, reason] of [
      [false, 'Incorrect API key provided: [redacted]. Check the key [redacted] and retry.'],
      [true, 'no usable key'],
    ] as const) {
      const { error } = await askError(client, stream, { model: 'lone' });
      const message = (error as APIError).message;
      seen.push(message, JSON.stringify((error as APIError).error ?? null));
      expect((error as APIError).status).toBe(502);
      expect(message).toContain(reason);
    }
    // A wrong client token is not echoed.
    const wrong = await fetch(`${gateway.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${WRONG_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'chat', messages: USER }) });
    expect(wrong.status).toBe(401);
    seen.push(await wrong.text());
    // A rotation: logged, by fingerprint.
    await gateway.writeKey('anthropic', ROTATED);
    const deadline = Date.now() + 2000;
    while (!gateway.logs.some((line) => line.includes('key file changed'))) {
      if (Date.now() > deadline) throw new Error('the rotation was not logged');
      await sleep(20);
    }
    // The log line comes as the file is read; the new key serves once every key file was read.
    await sleep(100);
    expect((await ask(client, true)).text).toBe(TEXT);
    expect(fakes.anthropic.attempts.at(-1)?.key).toBe(ROTATED);
    const metrics = await gateway.scrape();

    // The logs said what happened, by fingerprint...
    const logs = gateway.logs.join('\n');
    expect(gateway.logs.filter((line) => line.includes('key rejected by the provider'))).toHaveLength(3);
    expect(logs).toContain(fingerprint(ROTATED));
    expect(logs).toContain(fingerprint(LEAKY_KEYS[0] as string));
    expect(logs).toContain('[redacted]');
    // ...and never by value.
    for (const secret of secrets) {
      expect(logs).not.toContain(secret);
      expect(metrics).not.toContain(secret);
      for (const text of seen) expect(text).not.toContain(secret);
    }
  } finally {
    await gateway.stop();
  }
});
