/** The drill's pure part: steps, probes, what an answer means, the hint, and the table. No network here. */
import { describe, expect, it } from '@jest/globals';
import { API_VERSION, KIND } from '../../src/api/group.js';
import { LLMRoute, type LLMRouteInput } from '../../src/api/schema.js';
import {
  buildReport,
  costOf,
  diagnose,
  drillSteps,
  formatReport,
  formatTable,
  isTransient,
  missingKeyMessages,
  planProbes,
  probeId,
  reportJSON,
  summaryLine,
  wantsMaxCompletionTokens,
  type DiagnosisInput,
  type DrillStep,
  type KeySourceState,
  type PriceOf,
  type ProbeOutcome,
} from '../../src/gateway/drill.js';
import type { UpstreamError } from '../../src/gateway/errors.js';

/** A price table of the test's own, so that changes to the built-in table cannot move these numbers. */
const prices = (table: Record<string, { input: number; output: number }> = {}): PriceOf => (model) => table[model];

const GPT = 'gpt-4o-2024-08-06';
const GPT_NEXT = 'gpt-4o-2024-11-20';
const CLAUDE = 'claude-sonnet-4-20250514';
const AZURE_URL = 'https://contoso-eastus.openai.azure.com';

function route(spec: Partial<LLMRouteInput['spec']> = {}): LLMRoute {
  return LLMRoute.parse({
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: 'support-bot' },
    spec: {
      providers: [
        { name: 'openai', type: 'openai' },
        { name: 'azure', type: 'azure-openai', baseURL: AZURE_URL, apiVersion: '2024-10-21', deployments: { [GPT]: 'gpt4o-prod', [GPT_NEXT]: 'gpt4o-next' } },
        { name: 'anthropic', type: 'anthropic' },
        { name: 'local', type: 'openai-compatible', baseURL: 'http://vllm:8000/v1' },
      ],
      models: [
        { name: 'chat', pin: GPT, fallback: [{ provider: 'openai' }, { provider: 'azure' }, { provider: 'anthropic', model: CLAUDE }] },
        { name: 'cheap', pin: CLAUDE, fallback: [{ provider: 'anthropic' }, { provider: 'local', model: 'llama-3.3-70b' }] },
      ],
      environments: [
        {
          name: 'staging',
          keys: {
            openai: [{ secretRef: { name: 'openai', key: 'k' } }, { secretRef: { name: 'openai-next', key: 'k' } }],
            azure: [{ secretRef: { name: 'azure', key: 'k' } }],
            anthropic: [{ secretRef: { name: 'anthropic', key: 'k' } }],
          },
        },
        { name: 'production', keys: { openai: [{ secretRef: { name: 'openai', key: 'k' } }], azure: [{ secretRef: { name: 'azure', key: 'k' } }], anthropic: [{ secretRef: { name: 'anthropic', key: 'k' } }] } },
      ],
      ...spec,
    },
  });
}

const source = (provider: string, index: number, extra: Partial<KeySourceState> = {}): KeySourceState => ({ provider, index, from: `/keys/${provider}/${index}/value`, fingerprint: `sha256:${provider}${index}`, ...extra });
const SOURCES = [source('openai', 0), source('openai', 1), source('azure', 0), source('anthropic', 0)];

const step = (steps: DrillStep[], path: string, flag?: string) => {
  const found = steps.find((s) => s.path === path && s.flag === flag);
  if (!found) throw new Error(`no step ${path}`);
  return found;
};

describe('drillSteps', () => {
  it('lists every step of every chain, asking each provider for the step model or else the pin', () => {
    const steps = drillSteps(route(), 'staging');
    expect(steps.map((s) => [s.path, s.model, s.provider, s.providerIndex, s.modelAsked, s.modelFrom])).toEqual([
      ['spec.models[0].fallback[0]', 'chat', 'openai', 0, GPT, 'spec.models[0].pin'],
      ['spec.models[0].fallback[1]', 'chat', 'azure', 1, GPT, 'spec.models[0].pin'],
      ['spec.models[0].fallback[2]', 'chat', 'anthropic', 2, CLAUDE, 'spec.models[0].fallback[2].model'],
      ['spec.models[1].fallback[0]', 'cheap', 'anthropic', 2, CLAUDE, 'spec.models[1].pin'],
      ['spec.models[1].fallback[1]', 'cheap', 'local', 3, 'llama-3.3-70b', 'spec.models[1].fallback[1].model'],
    ]);
  });

  it('adds the (provider, model) pairs that flags of this environment introduce, and only those', () => {
    const flagged = route({
      flags: [
        { name: 'nov', set: { models: { chat: { pin: GPT_NEXT } } }, percent: 5 },
        { name: 'prod-only', environments: ['production'], set: { models: { chat: { pin: 'gpt-4.1-2025-04-14' } } } },
        { name: 'local-first', set: { models: { cheap: { fallback: [{ provider: 'local', model: 'llama-3.3-70b' }, { provider: 'openai', model: GPT }] } } } },
      ],
    });
    const added = drillSteps(flagged, 'staging').filter((s) => s.flag !== undefined);
    expect(added.map((s) => [s.path, s.flag, s.provider, s.modelAsked, s.modelFrom])).toEqual([
      // The pin moves; the Claude step names its own model and is already covered.
      ['spec.models[0].fallback[0]', 'nov', 'openai', GPT_NEXT, 'spec.flags[0].set.models.chat.pin'],
      ['spec.models[0].fallback[1]', 'nov', 'azure', GPT_NEXT, 'spec.flags[0].set.models.chat.pin'],
      // A replaced chain: only its pair not covered elsewhere. (local, llama) and (openai, GPT) are covered.
    ]);
    expect(drillSteps(flagged, 'production').filter((s) => s.flag === 'prod-only').map((s) => s.modelAsked)).toEqual(['gpt-4.1-2025-04-14', 'gpt-4.1-2025-04-14']);

    const replaced = route({ flags: [{ name: 'mini', set: { models: { cheap: { fallback: [{ provider: 'openai', model: 'gpt-4o-mini-2024-07-18' }] } } } }] });
    expect(drillSteps(replaced, 'staging').filter((s) => s.flag)).toEqual([
      expect.objectContaining({ path: 'spec.flags[0].set.models.cheap.fallback[0]', modelFrom: 'spec.flags[0].set.models.cheap.fallback[0].model', modelAsked: 'gpt-4o-mini-2024-07-18' }),
    ]);
  });
});

describe('planProbes', () => {
  it('asks each distinct (provider, model) once per key source, and keyless providers once', () => {
    const probes = planProbes(drillSteps(route(), 'staging'), SOURCES);
    expect(probes.map((p) => [p.provider, p.modelAsked, p.keyIndex])).toEqual([
      ['openai', GPT, 0],
      ['openai', GPT, 1],
      ['azure', GPT, 0],
      ['anthropic', CLAUDE, 0],
      ['local', 'llama-3.3-70b', undefined],
    ]);
    expect(new Set(probes.map((p) => p.id)).size).toBe(probes.length);
  });
});

describe('missingKeyMessages', () => {
  it('words a provider without any key as llmroute up does, and names each empty source of a provider that has others', () => {
    const sources = [source('openai', 0), source('openai', 1, { fingerprint: undefined, problem: 'not set', from: 'LLMROUTE_KEY_OPENAI_1' }), source('azure', 0), source('anthropic', 0, { fingerprint: undefined, problem: 'empty' })];
    expect(missingKeyMessages(route(), 'staging', sources)).toEqual([
      'key source 1 of provider "openai" in environment "staging" has no key: looked for LLMROUTE_KEY_OPENAI_1 (not set)',
      'provider "anthropic" (anthropic) in environment "staging" has no key: looked for /keys/anthropic/0/value',
    ]);
    expect(missingKeyMessages(route(), 'staging', SOURCES)).toEqual([]);
  });
});

// -------------------------------------------------------------------------------------------------------------

const steps = drillSteps(route(), 'staging');
const providers = route().spec.providers;
const err = (extra: Partial<UpstreamError> & Pick<UpstreamError, 'class' | 'message'>): ProbeOutcome => ({ kind: 'failed', latencyMs: 40, attempts: 1, error: { provider: 'x', ...extra } });

function verdictFor(path: string, outcome: ProbeOutcome, keyIndex?: number) {
  const s = step(steps, path);
  const provider = providers[s.providerIndex];
  if (!provider) throw new Error('no provider');
  const input: DiagnosisInput = { step: s, provider, environmentIndex: 0, outcome, url: `${AZURE_URL}/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21` };
  if (keyIndex !== undefined) input.source = SOURCES.find((k) => k.provider === s.provider && k.index === keyIndex) as KeySourceState;
  return diagnose(input);
}

const OPENAI = 'spec.models[0].fallback[0]';
const AZURE = 'spec.models[0].fallback[1]';
const ANTHROPIC = 'spec.models[0].fallback[2]';
const LOCAL = 'spec.models[1].fallback[1]';

describe('diagnose', () => {
  it('an answer: reachable, authenticated, found', () => {
    expect(verdictFor(OPENAI, { kind: 'ok', latencyMs: 300, attempts: 1, answered: `${GPT}` }, 0)).toEqual({ result: 'ok', reachable: true, authenticated: true, found: true, transient: false });
  });

  it('an Azure deployment that answers as another model is a warning naming the deployments map', () => {
    const verdict = verdictFor(AZURE, { kind: 'ok', latencyMs: 300, attempts: 1, answered: GPT_NEXT }, 0);
    expect(verdict.result).toBe('ok');
    expect(verdict.problem).toBeUndefined();
    expect(verdict.warning).toBe(`spec.models[0].fallback[1]: Azure deployment "gpt4o-prod" answered as model "${GPT_NEXT}", not "${GPT}": check that spec.providers[1].deployments maps each model to a deployment of that model`);
  });

  it('Azure DeploymentNotFound: the deployment and the map to check', () => {
    const verdict = verdictFor(AZURE, err({ class: 'bad_request', status: 404, code: 'DeploymentNotFound', message: 'The API deployment for this resource does not exist.' }), 0);
    expect(verdict).toMatchObject({ result: 'bad_request', reachable: true, authenticated: true, found: false, transient: false });
    expect(verdict.problem).toBe(`Azure deployment "gpt4o-prod" not found at ${AZURE_URL}`);
    expect(verdict.hint).toBe(`check spec.providers[1].deployments (model "${GPT}" → "gpt4o-prod") against the deployments of that resource`);
  });

  it('Azure refusing the api-version, as a 400 or in a model-specific message', () => {
    const verdict = verdictFor(AZURE, err({ class: 'bad_request', status: 400, code: 'BadRequest', message: 'API version not supported' }), 0);
    expect(verdict.problem).toBe(`api-version 2024-10-21 rejected by ${AZURE_URL}: "API version not supported"`);
    expect(verdict.hint).toBe('set spec.providers[1].apiVersion to a version the resource supports, e.g. 2024-10-21');
    expect(verdictFor(AZURE, err({ class: 'bad_request', status: 400, code: 'BadRequest', message: 'Model o3-mini is enabled only for api versions 2024-12-01-preview and later' }), 0).problem).toMatch(/^api-version 2024-10-21 rejected/);
  });

  it("Azure's bare 404 points at the address and the api-version, since it means either", () => {
    const verdict = verdictFor(AZURE, err({ class: 'bad_request', status: 404, code: '404', message: 'Resource not found' }), 0);
    expect(verdict).toMatchObject({ reachable: true, authenticated: null, found: null });
    expect(verdict.problem).toBe(`${AZURE_URL}/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21 not found: "Resource not found"`);
    expect(verdict.hint).toMatch(/^check spec\.providers\[1\]\.baseURL .* and spec\.providers\[1\]\.apiVersion/);
  });

  it('a rejected key: which source, where it was read, rotate or remove it', () => {
    const verdict = verdictFor(OPENAI, err({ class: 'auth_failed', status: 401, code: 'invalid_api_key', message: 'Incorrect API key provided' }), 1);
    expect(verdict).toMatchObject({ result: 'auth_failed', reachable: true, authenticated: false, found: null, transient: false });
    expect(verdict.problem).toBe('key source 1 of provider "openai" rejected (401)');
    expect(verdict.hint).toBe('rotate or remove it (spec.environments[0].keys.openai[1], read from /keys/openai/1/value)');
    // Azure's 401 also means "a key of another resource".
    expect(verdictFor(AZURE, err({ class: 'auth_failed', status: 401, message: 'Access denied' }), 0).hint).toMatch(/check spec\.providers\[1\]\.baseURL too$/);
    expect(verdictFor(OPENAI, err({ class: 'auth_failed', status: 403, message: 'no access to model' }), 0).problem).toBe(`key source 0 of provider "openai" refused (403) for model "${GPT}": "no access to model"`);
  });

  it('an unknown model: found no, and the field the model comes from', () => {
    const openai = verdictFor(OPENAI, err({ class: 'bad_request', status: 404, code: 'model_not_found', message: `The model \`${GPT}\` does not exist or you do not have access to it.` }), 0);
    expect(openai).toMatchObject({ reachable: true, authenticated: true, found: false });
    expect(openai.problem).toMatch(/^model "gpt-4o-2024-08-06" not found at provider "openai" \(openai\) \(https:\/\/api\.openai\.com\/v1\)/);
    expect(openai.hint).toBe("check spec.models[0].pin, or the key's access to that model");
    expect(verdictFor(ANTHROPIC, err({ class: 'bad_request', status: 404, code: 'not_found_error', message: `model: ${CLAUDE}` }), 0).hint).toBe("check spec.models[0].fallback[2].model, or the key's access to that model");
  });

  it('a wrong address of a self-hosted server: the baseURL', () => {
    const verdict = verdictFor(LOCAL, err({ class: 'bad_request', status: 404, message: 'Not Found' }));
    expect(verdict.hint).toBe('check spec.providers[3].baseURL (OpenAI-compatible servers usually serve under /v1)');
  });

  it('unreachable versus a transient reset', () => {
    const refused = verdictFor(OPENAI, err({ class: 'connection_reset', code: 'ENOTFOUND', message: 'could not reach provider "openai": ENOTFOUND' }), 0);
    expect(refused).toMatchObject({ reachable: false, authenticated: undefined, found: undefined, transient: false, problem: 'cannot reach https://api.openai.com/v1 (ENOTFOUND)' });
    const reset = verdictFor(OPENAI, err({ class: 'connection_reset', code: 'ECONNRESET', message: 'socket hang up' }), 0);
    expect(reset).toMatchObject({ reachable: null, transient: true });
    expect(reset.hint).toMatch(/^transient: re-run the drill/);
  });

  it('rate limits are transient; exhausted quota is not', () => {
    expect(verdictFor(OPENAI, err({ class: 'rate_limited', status: 429, code: 'rate_limit_exceeded', message: 'Rate limit reached' }), 0)).toMatchObject({ reachable: true, authenticated: true, transient: true });
    const quota = verdictFor(OPENAI, err({ class: 'quota_exhausted', status: 429, code: 'insufficient_quota', message: 'You exceeded your current quota' }), 1);
    expect(quota).toMatchObject({ transient: false, problem: 'key source 1 of provider "openai": quota exhausted (insufficient_quota)' });
  });

  it('a source without a key, and a request that cannot be built, are not sent', () => {
    const s = step(steps, OPENAI);
    const missing = diagnose({ step: s, provider: providers[0]!, environmentIndex: 0, source: source('openai', 1, { fingerprint: undefined, problem: 'not set', from: 'LLMROUTE_KEY_OPENAI_1' }), outcome: { kind: 'no-key' } });
    expect(missing).toMatchObject({ result: 'no_key', reachable: undefined, problem: 'key source 1 of provider "openai" has no key (LLMROUTE_KEY_OPENAI_1: not set)', hint: 'provide it, or remove spec.environments[0].keys.openai[1] if it was rotated out' });
    expect(diagnose({ step: s, provider: providers[0]!, environmentIndex: 0, outcome: { kind: 'unsendable', message: 'no deployment' } })).toMatchObject({ result: 'not_sent', problem: 'no deployment', hint: 'fix spec.providers[0]' });
  });
});

describe('retry decisions', () => {
  it('knows transient classes and the max_completion_tokens refusal of reasoning models', () => {
    expect(isTransient({ class: 'server_error', provider: 'p', message: '' })).toBe(true);
    expect(isTransient({ class: 'connection_reset', provider: 'p', message: '', code: 'ECONNREFUSED' })).toBe(false);
    expect(isTransient({ class: 'auth_failed', provider: 'p', message: '' })).toBe(false);
    expect(wantsMaxCompletionTokens({ class: 'bad_request', provider: 'p', message: "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead." })).toBe(true);
    expect(wantsMaxCompletionTokens({ class: 'bad_request', provider: 'p', message: 'max_tokens is too large' })).toBe(false);
  });
});

describe('cost', () => {
  it('prices tokens per million, and has no cost without a price or usage', () => {
    const priceOf = prices({ [GPT]: { input: 2.5, output: 10 } });
    expect(costOf({ prompt_tokens: 8, completion_tokens: 1, total_tokens: 9 }, priceOf(GPT))).toBeCloseTo(0.00003, 10);
    expect(costOf({ prompt_tokens: 8, completion_tokens: 1, total_tokens: 9 }, priceOf(CLAUDE))).toBeUndefined();
    expect(costOf(undefined, priceOf(GPT))).toBeUndefined();
  });
});

// -------------------------------------------------------------------------------------------------------------

describe('the report', () => {
  const r = route();
  const drillSteps_ = drillSteps(r, 'staging');
  const ok = (latencyMs: number): ProbeOutcome => ({ kind: 'ok', latencyMs, attempts: 1, usage: { prompt_tokens: 8, completion_tokens: 1, total_tokens: 9 } });
  const outcomes = new Map<string, ProbeOutcome>([
    [probeId('openai', GPT, 0), ok(310)],
    [probeId('openai', GPT, 1), err({ class: 'auth_failed', status: 401, message: 'Incorrect API key provided' })],
    [probeId('azure', GPT, 0), err({ class: 'bad_request', status: 404, code: 'DeploymentNotFound', message: 'The API deployment for this resource does not exist.' })],
    [probeId('anthropic', CLAUDE, 0), ok(1200)],
    [probeId('local', 'llama-3.3-70b', undefined), ok(45)],
  ]);
  const report = buildReport({ route: r, environment: 'staging', sources: SOURCES, steps: drillSteps_, outcomes, prices: prices({ [GPT]: { input: 2.5, output: 10 } }) });

  it('has a row per step and key source, failures per step with what to do, and fails', () => {
    expect(report.rows).toHaveLength(6);
    expect(report.ok).toBe(false);
    expect(report.failures.map((f) => `${f.step}: ${f.problem}: ${f.hint}`)).toEqual([
      'spec.models[0].fallback[0]: key source 1 of provider "openai" rejected (401): rotate or remove it (spec.environments[0].keys.openai[1], read from /keys/openai/1/value)',
      `spec.models[0].fallback[1]: Azure deployment "gpt4o-prod" not found at ${AZURE_URL}: check spec.providers[1].deployments (model "${GPT}" → "gpt4o-prod") against the deployments of that resource`,
    ]);
    expect(summaryLine(report)).toBe('drill FAILED: 2 of 5 steps would fail (5 steps of 2 models, 5 requests, $0.000030)');
  });

  it('totals the cost per request sent, so a pair shared by two steps counts once', () => {
    const priced = buildReport({ route: r, environment: 'staging', sources: SOURCES, steps: drillSteps_, outcomes, prices: prices({ [GPT]: { input: 2.5, output: 10 }, [CLAUDE]: { input: 3, output: 15 } }) });
    expect(priced.rows.filter((row) => row.costUSD !== undefined)).toHaveLength(3);
    expect(summaryLine(priced)).toMatch(/, \$0\.000069\)$/);
  });

  it('merges a failure that every key source shares into one line', () => {
    const both = new Map(outcomes);
    both.set(probeId('openai', GPT, 0), err({ class: 'bad_request', status: 404, code: 'model_not_found', message: 'The model does not exist' }));
    both.set(probeId('openai', GPT, 1), err({ class: 'bad_request', status: 404, code: 'model_not_found', message: 'The model does not exist' }));
    const merged = buildReport({ route: r, environment: 'staging', sources: SOURCES, steps: drillSteps_, outcomes: both, prices: prices() });
    expect(merged.failures.filter((f) => f.step === OPENAI)).toEqual([expect.objectContaining({ keySources: [0, 1], problem: expect.stringMatching(/^model "gpt-4o-2024-08-06" not found/) })]);
  });

  it('prints aligned columns: model, step, provider (type), model asked, key, result, reachable, auth, found, latency, cost', () => {
    const lines = formatTable(report).split('\n');
    expect(lines[0]).toMatch(/^MODEL\s+STEP\s+PROVIDER\s+MODEL ASKED\s+KEY\s+RESULT\s+REACHABLE\s+AUTH\s+FOUND\s+LATENCY\s+COST$/);
    const at = (name: string) => (lines[0] as string).indexOf(name);
    for (const line of lines.slice(1)) expect(line.slice(at('RESULT'), at('REACHABLE')).trim()).toMatch(/^(ok|auth_failed|bad_request)$/);
    expect(lines).toContainEqual(expect.stringMatching(/^chat\s+spec\.models\[0\]\.fallback\[0\]\s+openai \(openai\)\s+gpt-4o-2024-08-06\s+#0\s+ok\s+yes\s+yes\s+yes\s+310ms\s+\$0\.000030$/));
    expect(lines).toContainEqual(expect.stringMatching(/^chat\s+spec\.models\[0\]\.fallback\[1\]\s+azure \(azure-openai\)\s+gpt-4o-2024-08-06 → gpt4o-prod\s+#0\s+bad_request\s+yes\s+yes\s+no\s+40ms\s+-$/));
    expect(lines).toContainEqual(expect.stringMatching(/^cheap\s+spec\.models\[1\]\.fallback\[0\]\s+anthropic \(anthropic\)\s+claude-sonnet-4-20250514\s+#0\s+ok\s+yes\s+yes\s+yes\s+1\.2s\s+8\+1 tok$/));
    expect(lines).toContainEqual(expect.stringMatching(/^cheap\s+spec\.models\[1\]\.fallback\[1\]\s+local \(openai-compatible\)\s+llama-3\.3-70b\s+none\s+ok/));
  });

  it('puts failures and the final line after the table, and the key sources before it', () => {
    const text = formatReport(report);
    expect(text.indexOf('key sources of environment "staging":')).toBeLessThan(text.indexOf('MODEL '));
    expect(text.indexOf('failures:')).toBeGreaterThan(text.indexOf('MODEL '));
    expect(text.trimEnd().split('\n').at(-1)).toBe(summaryLine(report));
  });

  it('passes when every probe answered', () => {
    const all = new Map([...outcomes.keys()].map((id) => [id, ok(100)]));
    const passed = buildReport({ route: r, environment: 'staging', sources: SOURCES, steps: drillSteps_, outcomes: all, prices: prices() });
    expect(passed.ok).toBe(true);
    expect(summaryLine(passed)).toBe('drill passed: every step answered (5 steps of 2 models, 5 requests)');
  });

  it('is machine-readable as JSON, with checks as true, false or null', () => {
    const json = reportJSON(report) as { steps: Record<string, unknown>[] };
    expect(json.steps[2]).toMatchObject({ step: AZURE, provider: 'azure', deployment: 'gpt4o-prod', result: 'bad_request', reachable: true, authenticated: true, found: false, status: 404, code: 'DeploymentNotFound' });
    expect(json.steps[1]).toMatchObject({ keySource: 1, result: 'auth_failed', found: null });
  });
});
