/**
 * `llmroute drill` end to end: route files in a temporary directory whose providers point at the fake providers
 * (OpenAI, Azure OpenAI and Anthropic wire formats), keys in a temporary keys directory laid out like the mounted
 * Secrets (or in LLMROUTE_KEY_* variables), and the command run as the CLI runs it.
 *
 * The fake provider answers every Azure deployment name and every api-version it is sent (it only refuses a missing
 * api-version). A real Azure resource does not, so the fake Azure resource here sits behind `azureResource`: a front
 * that knows the resource's deployments and supported api-versions and answers the rest with Azure's own errors, and
 * forwards everything else to the fake unchanged.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { API_VERSION, KIND } from '../../src/api/group.js';
import type { LLMRouteInput } from '../../src/api/schema.js';
import { drillCommand } from '../../src/cli/drill.js';
import { main } from '../../src/cli/main.js';
import { startFakeProvider, type FakeProvider } from '../support/fake-provider.js';

const GPT = 'gpt-4o-2024-08-06';
const MINI = 'gpt-4o-mini-2024-07-18';
const CLAUDE = 'claude-sonnet-4-20250514';
const DEPLOYMENT = 'gpt4o-prod';
const KEYS = {
  openai: 'sk-openai-current-0123456789abcdef',
  openaiNext: 'sk-openai-next-0123456789abcdef',
  azure: 'azure-key-0123456789abcdef0123',
  anthropic: 'sk-ant-0123456789abcdef',
};

// -------------------------------------------------------------------------------------------------------------
// A fake Azure OpenAI resource: its deployments and api-versions, Azure's errors for anything else

interface AzureResource {
  url: string;
  /** Requests the front refused itself, never forwarded. */
  refused: { path: string; why: 'api-version' | 'deployment' }[];
  stop(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function azureResource(fake: FakeProvider, deployments: readonly string[], apiVersions: readonly string[]): Promise<AzureResource> {
  const refused: AzureResource['refused'] = [];
  const server: Server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const url = new URL(req.url ?? '/', 'http://front');
      const deployment = /^\/openai\/deployments\/([^/]+)\//.exec(url.pathname)?.[1];
      const version = url.searchParams.get('api-version');
      const azureError = (status: number, code: string, message: string, why: 'api-version' | 'deployment') => {
        refused.push({ path: `${url.pathname}${url.search}`, why });
        res.writeHead(status, { 'content-type': 'application/json', 'apim-request-id': 'req_front' });
        res.end(JSON.stringify({ error: { code, message } }));
      };
      // What Azure answers, in this order: an api-version it does not serve, then a deployment it does not have.
      if (deployment !== undefined && version !== null && !apiVersions.includes(version)) return azureError(400, 'BadRequest', 'API version not supported', 'api-version');
      if (deployment !== undefined && !deployments.includes(decodeURIComponent(deployment))) {
        return azureError(404, 'DeploymentNotFound', 'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.', 'deployment');
      }
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string' && !['host', 'connection', 'content-length'].includes(name)) headers[name] = value;
      const upstream = await fetch(`${fake.url}${req.url ?? '/'}`, { method: req.method ?? 'POST', headers, ...(body.length ? { body } : {}) });
      res.writeHead(upstream.status, Object.fromEntries([...upstream.headers].filter(([name]) => !['content-length', 'transfer-encoding', 'connection', 'keep-alive'].includes(name))));
      if (upstream.body) for await (const chunk of upstream.body) res.write(chunk);
      res.end();
    })().catch(() => res.destroy());
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    refused,
    stop: () =>
      new Promise<void>((done, fail) => {
        server.closeAllConnections();
        server.close((error) => (error ? fail(error) : done()));
      }),
  };
}

// -------------------------------------------------------------------------------------------------------------
// Fixtures

let openai: FakeProvider;
let azureFake: FakeProvider;
let anthropic: FakeProvider;
let azure: AzureResource;
let dir: string;

beforeAll(async () => {
  [openai, azureFake, anthropic] = await Promise.all([startFakeProvider(), startFakeProvider(), startFakeProvider()]);
  azure = await azureResource(azureFake, [DEPLOYMENT], ['2024-10-21', '2025-01-01-preview']);
});
afterAll(async () => {
  await azure.stop();
  await Promise.all([openai.stop(), azureFake.stop(), anthropic.stop()]);
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'llmroute-drill-'));
  // A real Azure deployment answers with the model behind it, not its own name.
  azureFake.script((attempt) => ({ kind: 'ok', model: attempt.deployment === DEPLOYMENT ? GPT : 'some-other-model' }));
});
afterEach(async () => {
  for (const fake of [openai, azureFake, anthropic]) fake.reset();
  azure.refused.length = 0;
  await rm(dir, { recursive: true, force: true });
});

interface RouteOptions {
  deployment?: string;
  apiVersion?: string;
  openaiBaseURL?: string;
}

/** `chat`: OpenAI → Azure → Anthropic; `mini`: OpenAI → Anthropic (the same Claude snapshot, probed once). */
function route(options: RouteOptions = {}): LLMRouteInput {
  const secret = (name: string) => [{ secretRef: { name, key: 'apiKey' } }];
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: 'support-bot' },
    spec: {
      auth: 'none',
      providers: [
        { name: 'openai', type: 'openai', baseURL: options.openaiBaseURL ?? `${openai.url}/v1` },
        { name: 'azure', type: 'azure-openai', baseURL: azure.url, apiVersion: options.apiVersion ?? '2024-10-21', deployments: { [GPT]: options.deployment ?? DEPLOYMENT } },
        { name: 'anthropic', type: 'anthropic', baseURL: anthropic.url },
      ],
      models: [
        { name: 'chat', pin: GPT, fallback: [{ provider: 'openai' }, { provider: 'azure' }, { provider: 'anthropic', model: CLAUDE }] },
        { name: 'mini', pin: MINI, fallback: [{ provider: 'openai' }, { provider: 'anthropic', model: CLAUDE }] },
      ],
      // An override the built-in price table cannot have: 8 prompt tokens cost $0.008.
      prices: { [GPT]: { input: 1000, output: 0 } },
      environments: [
        {
          name: 'staging',
          keys: { openai: [...secret('openai'), ...secret('openai-next')], azure: secret('azure'), anthropic: secret('anthropic') },
        },
      ],
    },
  };
}

async function writeRoute(options: RouteOptions = {}): Promise<string> {
  const file = join(dir, 'route.yaml');
  await writeFile(file, stringify(route(options)));
  return file;
}

/** Keys laid out like the mounted Secrets: `<dir>/keys/<provider>/<n>/value`. */
async function writeKeys(keys: Record<string, string[]> = { openai: [KEYS.openai, KEYS.openaiNext], azure: [KEYS.azure], anthropic: [KEYS.anthropic] }): Promise<string> {
  const root = join(dir, 'secrets');
  for (const [provider, values] of Object.entries(keys)) {
    for (const [index, value] of values.entries()) {
      await mkdir(join(root, 'keys', provider, String(index)), { recursive: true });
      await writeFile(join(root, 'keys', provider, String(index), 'value'), `${value}\n`);
    }
  }
  return root;
}

function sink(): { stream: Writable; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString('utf8');
      done();
    },
  });
  return { stream, text: () => text };
}

async function drill(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = sink();
  const err = sink();
  const code = await drillCommand([...args, '--timeout', '5s'], out.stream, err.stream);
  return { code, out: out.text(), err: err.text() };
}

const tableRows = (out: string) => out.split('\n').filter((line) => /^(chat|mini)\s+spec\./.test(line));
const failureLines = (out: string) => out.split('\n').filter((line) => /^ {2}spec\./.test(line));

// -------------------------------------------------------------------------------------------------------------

describe('llmroute drill', () => {
  it('passes when every step answers with every key: exit 0, a row per step and key, each (provider, model) once per key', async () => {
    const { code, out, err } = await drill(['-f', await writeRoute(), '--env', 'staging', '--keys-dir', await writeKeys()]);

    expect(err).not.toMatch(/missing keys/);
    expect(code).toBe(0);
    expect(out).toMatch(/^MODEL\s+STEP\s+PROVIDER\s+MODEL ASKED\s+KEY\s+RESULT\s+REACHABLE\s+AUTH\s+FOUND\s+LATENCY\s+COST$/m);
    // chat: openai × 2 keys, azure, anthropic; mini: openai × 2 keys, anthropic.
    const rows = tableRows(out);
    expect(rows).toHaveLength(7);
    for (const row of rows) expect(row).toMatch(/\s#\d\s+ok\s+yes\s+yes\s+yes\s+\d+ms\s/);
    expect(rows).toContainEqual(expect.stringMatching(/^chat\s+spec\.models\[0\]\.fallback\[1\]\s+azure \(azure-openai\)\s+gpt-4o-2024-08-06 → gpt4o-prod\s+#0\s+ok/));
    // Cost from the route's price override (src/gateway/prices.ts: overrides first, then the built-in table).
    expect(rows.filter((r) => r.includes('gpt-4o-2024-08-06 '))).toEqual(Array(3).fill(expect.stringMatching(/\s\$0\.0080$/)));
    expect(out).not.toMatch(/failures:|warnings:/);
    expect(out.trimEnd().split('\n').at(-1)).toMatch(/^drill passed: every step answered \(5 steps of 2 models, 6 requests, \$0\.0\d+\)$/);

    // Every key source of openai was used for each of its models: a rotated-out second key cannot hide.
    const openaiCalls = openai.attempts.map((a) => [a.key, (a.body as { model: string }).model]).sort();
    expect(openaiCalls).toEqual([[KEYS.openai, GPT], [KEYS.openai, MINI], [KEYS.openaiNext, GPT], [KEYS.openaiNext, MINI]].sort());
    // Azure through its own wire format: deployment in the path, api-version, api-key header, no model in the body.
    expect(azureFake.attempts).toEqual([expect.objectContaining({ path: `/openai/deployments/${DEPLOYMENT}/chat/completions?api-version=2024-10-21`, key: KEYS.azure, outcome: 'ok' })]);
    expect(azureFake.attempts[0]?.headers['api-key']).toBe(KEYS.azure);
    // The Claude snapshot is shared by both chains and asked once.
    expect(anthropic.attempts).toEqual([expect.objectContaining({ path: '/v1/messages', key: KEYS.anthropic, outcome: 'ok' })]);
    // The minimal request, streamed as the gateway streams it.
    for (const attempt of [...openai.attempts, ...azureFake.attempts]) {
      expect(attempt.body).toMatchObject({ max_tokens: 1, stream: true, messages: [{ role: 'user', content: 'Hi' }] });
    }
    expect(anthropic.attempts[0]?.body).toMatchObject({ max_tokens: 1, stream: true, messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }] });
    // The keys themselves never reach the output, only their fingerprints.
    for (const key of Object.values(KEYS)) expect(out + err).not.toContain(key);
    expect(out).toMatch(/openai #1\s+\S+\/keys\/openai\/1\/value\s+sha256:[0-9a-f]{12}/);
  });

  it('fails on a wrong Azure deployment name, naming the step, the deployment and the field to fix', async () => {
    const { code, out } = await drill(['-f', await writeRoute({ deployment: 'gpt4o-prdo' }), '--env', 'staging', '--keys-dir', await writeKeys()]);

    expect(code).toBe(1);
    expect(azure.refused).toEqual([{ path: '/openai/deployments/gpt4o-prdo/chat/completions?api-version=2024-10-21', why: 'deployment' }]);
    expect(failureLines(out)).toEqual([
      `  spec.models[0].fallback[1]: Azure deployment "gpt4o-prdo" not found at ${azure.url}: check spec.providers[1].deployments (model "${GPT}" → "gpt4o-prdo") against the deployments of that resource`,
    ]);
    expect(tableRows(out).find((r) => r.includes('azure-openai'))).toMatch(/gpt4o-prdo\s+#0\s+bad_request\s+yes\s+yes\s+no\s/);
    // The rest of the chain was still drilled, and passed.
    expect(tableRows(out).filter((r) => /\sok\s/.test(r))).toHaveLength(6);
    expect(out).toMatch(/^drill FAILED: 1 of 5 steps would fail \(/m);
  });

  it('fails on a rotated-out second key the provider rejects (401), naming the provider and the key source', async () => {
    openai.script((attempt) => (attempt.key === KEYS.openaiNext ? { kind: 'auth_failed' } : { kind: 'ok' }));
    const keys = await writeKeys();
    const { code, out } = await drill(['-f', await writeRoute(), '--env', 'staging', '--keys-dir', keys]);

    expect(code).toBe(1);
    const fix = `key source 1 of provider "openai" rejected (401): rotate or remove it (spec.environments[0].keys.openai[1], read from ${keys}/keys/openai/1/value)`;
    expect(failureLines(out)).toEqual([`  spec.models[0].fallback[0]: ${fix}`, `  spec.models[1].fallback[0]: ${fix}`]);
    const openaiRows = tableRows(out).filter((r) => r.includes('openai (openai)'));
    expect(openaiRows.filter((r) => /#0\s+ok\s+yes\s+yes\s+yes/.test(r))).toHaveLength(2);
    expect(openaiRows.filter((r) => /#1\s+auth_failed\s+yes\s+no\s+\?/.test(r))).toHaveLength(2);
    // Not retried: a rejected key stays rejected.
    expect(openai.attempts.filter((a) => a.key === KEYS.openaiNext)).toHaveLength(2);
  });

  it('fails on an api-version the Azure resource does not serve', async () => {
    const { code, out } = await drill(['-f', await writeRoute({ apiVersion: '2024-13-01' }), '--env', 'staging', '--keys-dir', await writeKeys()]);

    expect(code).toBe(1);
    expect(azure.refused).toEqual([{ path: `/openai/deployments/${DEPLOYMENT}/chat/completions?api-version=2024-13-01`, why: 'api-version' }]);
    expect(failureLines(out)).toEqual([
      `  spec.models[0].fallback[1]: api-version 2024-13-01 rejected by ${azure.url}: "API version not supported": set spec.providers[1].apiVersion to a version the resource supports, e.g. 2024-10-21`,
    ]);
  });

  it('reports a key that is missing the way llmroute up does, drills the rest, and fails', async () => {
    const keys = await writeKeys({ openai: [KEYS.openai, KEYS.openaiNext], azure: [KEYS.azure] });
    const { code, out, err } = await drill(['-f', await writeRoute(), '--env', 'staging', '--keys-dir', keys]);

    expect(code).toBe(1);
    expect(err).toContain(`  - provider "anthropic" (anthropic) in environment "staging" has no key: looked for ${keys}/keys/anthropic/0/value`);
    expect(anthropic.attempts).toHaveLength(0);
    expect(openai.attempts).toHaveLength(4);
    expect(tableRows(out).filter((r) => r.includes(CLAUDE))).toEqual([expect.stringMatching(/#0\s+no_key\s+-\s+-\s+-\s+-\s+-$/), expect.stringMatching(/#0\s+no_key/)]);
    expect(failureLines(out)).toContain(`  spec.models[0].fallback[2]: key source 0 of provider "anthropic" has no key (${keys}/keys/anthropic/0/value: no such file): provide it, or remove spec.environments[0].keys.anthropic[0] if it was rotated out`);
  });

  describe('with keys in environment variables', () => {
    const saved = { ...process.env };
    afterEach(() => {
      for (const name of Object.keys(process.env)) if (name.startsWith('LLMROUTE_KEY_')) delete process.env[name];
      Object.assign(process.env, saved);
    });

    it('uses LLMROUTE_KEY_<PROVIDER>[_<N>] and names the variable of a missing source', async () => {
      process.env.LLMROUTE_KEY_OPENAI = KEYS.openai;
      process.env.LLMROUTE_KEY_AZURE = KEYS.azure;
      process.env.LLMROUTE_KEY_ANTHROPIC = KEYS.anthropic;
      const { code, out, err } = await drill(['-f', await writeRoute(), '--env', 'staging']);

      expect(code).toBe(1);
      expect(err).toContain('  - key source 1 of provider "openai" in environment "staging" has no key: looked for LLMROUTE_KEY_OPENAI_1 (not set)');
      expect(new Set(openai.attempts.map((a) => a.key))).toEqual(new Set([KEYS.openai]));
      expect(tableRows(out).filter((r) => /openai \(openai\).*#1\s+no_key/.test(r))).toHaveLength(2);
      expect(out).toMatch(/openai #1\s+LLMROUTE_KEY_OPENAI_1\s+no key \(not set\)/);

      process.env.LLMROUTE_KEY_OPENAI_1 = KEYS.openaiNext;
      openai.reset();
      const again = await drill(['-f', await writeRoute(), '--env', 'staging']);
      expect(again.code).toBe(0);
      expect(new Set(openai.attempts.map((a) => a.key))).toEqual(new Set([KEYS.openai, KEYS.openaiNext]));
    });
  });

  it('fails when a provider cannot be reached, saying so rather than blaming the key or the model', async () => {
    const closed = createServer();
    await new Promise<void>((done) => closed.listen(0, '127.0.0.1', done));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((done) => closed.close(() => done()));

    const { code, out } = await drill(['-f', await writeRoute({ openaiBaseURL: `http://127.0.0.1:${port}/v1` }), '--env', 'staging', '--keys-dir', await writeKeys()]);

    expect(code).toBe(1);
    expect(tableRows(out).filter((r) => r.includes('openai (openai)'))).toEqual(Array(4).fill(expect.stringMatching(/connection_reset\s+no\s+-\s+-\s/)));
    expect(failureLines(out)).toContain(`  spec.models[0].fallback[0]: cannot reach http://127.0.0.1:${port}/v1 (ECONNREFUSED): check spec.providers[0].baseURL, and that egress to it is allowed from where the gateway runs`);
  });

  it('prints machine-readable results with --json', async () => {
    openai.script((attempt) => (attempt.key === KEYS.openaiNext ? { kind: 'auth_failed' } : { kind: 'ok' }));
    const { code, out } = await drill(['-f', await writeRoute(), '--env', 'staging', '--keys-dir', await writeKeys(), '--json']);

    expect(code).toBe(1);
    const report = JSON.parse(out) as { ok: boolean; requests: number; steps: Record<string, unknown>[]; failures: Record<string, unknown>[]; keySources: Record<string, unknown>[] };
    expect(report.ok).toBe(false);
    expect(report.steps).toHaveLength(7);
    expect(report.steps).toContainEqual(
      expect.objectContaining({ model: 'chat', step: 'spec.models[0].fallback[1]', provider: 'azure', providerType: 'azure-openai', modelAsked: GPT, deployment: DEPLOYMENT, keySource: 0, result: 'ok', reachable: true, authenticated: true, found: true, status: 200 }),
    );
    expect(report.steps).toContainEqual(expect.objectContaining({ step: 'spec.models[1].fallback[0]', keySource: 1, result: 'auth_failed', reachable: true, authenticated: false, found: null, status: 401, code: 'invalid_api_key' }));
    expect(report.failures).toEqual([
      expect.objectContaining({ step: 'spec.models[0].fallback[0]', provider: 'openai', keySources: [1], transient: false }),
      expect.objectContaining({ step: 'spec.models[1].fallback[0]', provider: 'openai', keySources: [1], transient: false }),
    ]);
    expect(report.keySources).toContainEqual({ provider: 'openai', index: 1, from: expect.stringMatching(/keys\/openai\/1\/value$/), fingerprint: expect.stringMatching(/^sha256:/), problem: null });
    expect(out).not.toContain(KEYS.openaiNext);
  });

  it('refuses bad usage with exit 2', async () => {
    expect((await drill([])).code).toBe(2);
    expect((await drill(['-f', await writeRoute(), '--env', 'production'])).err).toMatch(/no environment "production"; "support-bot" has staging/);
    const bad = sink();
    expect(await drillCommand(['-f', await writeRoute(), '--timeout', 'soon'], bad.stream, bad.stream)).toBe(2);
    expect(bad.text()).toMatch(/--timeout takes a duration/);
  });

  it('is a command of llmroute', async () => {
    const write = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(await main(['help'])).toBe(0);
      expect(write.mock.calls.map((c) => String(c[0])).join('')).toContain('llmroute drill -f ROUTE.yaml');
    } finally {
      write.mockRestore();
    }
  });
});
