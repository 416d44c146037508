/**
 * The failover drill, pure part: which steps a route's fallback chains have in an environment, which requests prove
 * them, what each answer means (reachable? authenticated? model or deployment found?), the hint that says what to
 * fix, and the table, summary and JSON that `llmroute drill` prints. Sending the requests is src/cli/drill.ts.
 *
 * The drill exists because a fallback chain is only exercised when the primary fails, which is the worst moment to
 * find out that the Azure deployment is misnamed, its `api-version` is retired or the second key was rotated out.
 */
import { compileEnvironment } from '../api/compile.js';
import { formatPath } from '../api/paths.js';
import { needsKey } from '../api/rules.js';
import type { LLMRoute, Provider } from '../api/schema.js';
import type { ErrorClass, UpstreamError } from './errors.js';
import { applyFlags } from './flags.js';
import type { Price } from './prices.js';
import { ANTHROPIC_BASE_URL } from './providers/anthropic.js';
import { OPENAI_BASE_URL } from './providers/openai.js';
import type { ChatRequest, Usage } from './types.js';

/** The request of every probe: one word in, at most one token out. */
export function drillRequest(model: string): ChatRequest {
  return { model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 1 };
}

/** An Azure api-version that is generally available and long-supported, suggested when the configured one is refused. */
export const SUGGESTED_AZURE_API_VERSION = '2024-10-21';

// -------------------------------------------------------------------------------------------------------------
// Steps and probes

export interface DrillStep {
  /** Where the step is written: `spec.models[0].fallback[1]`, or `spec.flags[0].set.models.chat.fallback[1]`. */
  path: string;
  /** The model name clients send (`chat`). */
  model: string;
  /** Set for a step that only a flag's overrides (a new pin or chain) produce. */
  flag?: string;
  provider: string;
  /** Position of the provider in `spec.providers`. */
  providerIndex: number;
  /** What the provider is asked for: the step's model, else the (flag's or model's) pin. */
  modelAsked: string;
  /** The field `modelAsked` comes from, for hints: `spec.models[0].fallback[2].model` or `spec.models[0].pin`. */
  modelFrom: string;
}

/**
 * Every step of every model's fallback chain, in spec order; then the steps that flags applying in this environment
 * add. A flag that moves the pin or replaces the chain sends traffic to (provider, model) pairs the base chains never
 * name, and a rollout reaches them before anyone has tried them. Each flag is applied alone, the way the gateway
 * applies it (`applyFlags`), whatever its current percentage: a flag at 0% is the one about to roll out.
 */
export function drillSteps(route: LLMRoute, environment: string): DrillStep[] {
  const providerIndex = (name: string) => route.spec.providers.findIndex((p) => p.name === name);
  const steps: DrillStep[] = [];
  route.spec.models.forEach((model, m) => {
    model.fallback.forEach((step, j) => {
      const path = ['spec', 'models', m, 'fallback', j] as const;
      steps.push({
        path: formatPath(path),
        model: model.name,
        provider: step.provider,
        providerIndex: providerIndex(step.provider),
        modelAsked: step.model ?? model.pin,
        modelFrom: step.model === undefined ? formatPath(['spec', 'models', m, 'pin']) : formatPath([...path, 'model']),
      });
    });
  });
  const seen = new Set(steps.map(pairKey));
  const config = compileEnvironment(route, environment);
  for (const flag of config.flags) {
    const f = (route.spec.flags ?? []).findIndex((x) => x.name === flag.name);
    for (const [name, set] of Object.entries(flag.set.models ?? {})) {
      const m = config.models.findIndex((model) => model.name === name);
      const base = config.models[m];
      if (!base) continue;
      const flagModel = ['spec', 'flags', f, 'set', 'models', name] as const;
      const pinFrom = set.pin === undefined ? formatPath(['spec', 'models', m, 'pin']) : formatPath([...flagModel, 'pin']);
      applyFlags(base, [flag]).fallback.forEach((step, j) => {
        const path = set.fallback ? [...flagModel, 'fallback', j] : ['spec', 'models', m, 'fallback', j];
        // Steps without a model of their own follow the pin; which those are, the flag's or the model's chain says.
        const followsPin = set.fallback ? set.fallback[j]?.model === undefined : base.fallback[j]?.model === base.pin;
        const candidate: DrillStep = {
          path: formatPath(path),
          model: name,
          flag: flag.name,
          provider: step.provider,
          providerIndex: providerIndex(step.provider),
          modelAsked: step.model,
          modelFrom: followsPin ? pinFrom : formatPath([...path, 'model']),
        };
        if (seen.has(pairKey(candidate))) return;
        seen.add(pairKey(candidate));
        steps.push(candidate);
      });
    }
  }
  return steps;
}

const pairKey = (step: { provider: string; modelAsked: string }) => JSON.stringify([step.provider, step.modelAsked]);

/** A step as failures name it: its path, and the flag when only the flag's overrides make it a different step. */
export function stepName(step: Pick<DrillStep, 'path' | 'flag'>): string {
  return step.flag === undefined || step.path.startsWith('spec.flags') ? step.path : `${step.path} under flag "${step.flag}"`;
}

/** One key source of a provider in the drilled environment. Never holds the key itself. */
export interface KeySourceState {
  provider: string;
  /** Position in `spec.environments[e].keys.<provider>`. */
  index: number;
  /** Where the drill looked: a file under `--keys-dir`, or an environment variable. */
  from: string;
  /** Of a usable key: the same fingerprint the LLMRoute's status shows. */
  fingerprint?: string;
  /** Why the source gave no usable key (`not set`, `empty`, `no such file`). */
  problem?: string;
}

/** One request to send: a distinct (provider, model) pair with one of the provider's key sources. */
export interface Probe {
  id: string;
  provider: string;
  modelAsked: string;
  /** Undefined for a provider without key sources (a self-hosted server or the mock). */
  keyIndex?: number;
}

/** Each distinct (provider, model) pair once, with each key source of the provider (every one must work). */
export function planProbes(steps: readonly DrillStep[], sources: readonly KeySourceState[]): Probe[] {
  const probes = new Map<string, Probe>();
  for (const step of steps) {
    const indexes = sources.filter((s) => s.provider === step.provider).map((s) => s.index);
    for (const keyIndex of indexes.length > 0 ? indexes : [undefined]) {
      const id = probeId(step.provider, step.modelAsked, keyIndex);
      if (!probes.has(id)) probes.set(id, { id, provider: step.provider, modelAsked: step.modelAsked, ...(keyIndex === undefined ? {} : { keyIndex }) });
    }
  }
  return [...probes.values()];
}

export const probeId = (provider: string, model: string, keyIndex: number | undefined) => JSON.stringify([provider, model, keyIndex ?? null]);

/** What came of one probe. */
export type ProbeOutcome =
  | { kind: 'ok'; latencyMs: number; attempts: number; usage?: Usage; answered?: string }
  | { kind: 'failed'; latencyMs: number; attempts: number; error: UpstreamError }
  /** Not sent: the key source gave no key, or a provider that needs a key has no source at all. */
  | { kind: 'no-key' }
  /** Not sent: the request could not even be built (the adapter refused the provider's settings). */
  | { kind: 'unsendable'; message: string };

/**
 * What a drill needs from the route and environment, before any request. Missing keys are worded as `llmroute up`
 * words them, so the same mistake reads the same in both commands.
 */
export function missingKeyMessages(route: LLMRoute, environment: string, sources: readonly KeySourceState[]): string[] {
  const messages: string[] = [];
  for (const provider of route.spec.providers) {
    const own = sources.filter((s) => s.provider === provider.name);
    const usable = own.filter((s) => s.problem === undefined);
    if (needsKey(provider) && usable.length === 0) {
      const where = own.map((s) => s.from);
      messages.push(`provider "${provider.name}" (${provider.type}) in environment "${environment}" has no key: looked for ${where.length ? where.join(', ') : 'a key source, but the environment declares none for it'}`);
      continue;
    }
    // A provider with some keys still fails over onto an empty source once the others are rejected.
    for (const source of own.filter((s) => s.problem !== undefined)) {
      messages.push(`key source ${source.index} of provider "${provider.name}" in environment "${environment}" has no key: looked for ${source.from} (${source.problem})`);
    }
  }
  return messages;
}

// -------------------------------------------------------------------------------------------------------------
// What an answer means

/** yes / no / unknown from what the provider said; undefined when nothing was sent. */
export type Check = boolean | null | undefined;

export interface Verdict {
  /** `ok`, the gateway's error class, `no_key` or `not_sent`. */
  result: 'ok' | ErrorClass | 'no_key' | 'not_sent';
  reachable: Check;
  authenticated: Check;
  /** The model (or, on Azure, the deployment) exists for this key. */
  found: Check;
  /** What failed, in the user's terms; undefined when the step works. */
  problem?: string;
  /** What to do about it. */
  hint?: string;
  /** The failure says nothing about the configuration (a 429, a 503, a timeout): re-running may pass. */
  transient: boolean;
  /** The step works but something is off (the provider answered with another model than the one pinned). */
  warning?: string;
}

export interface DiagnosisInput {
  step: DrillStep;
  provider: Pick<Provider, 'name' | 'type' | 'baseURL' | 'apiVersion' | 'deployments'>;
  /** Position of the drilled environment in `spec.environments`. */
  environmentIndex: number;
  source?: KeySourceState;
  /** The URL the request went to, when it could be built. */
  url?: string;
  outcome: ProbeOutcome;
}

/** Connection errors that mean the address is wrong or blocked, not that the provider had a bad moment. */
const UNREACHABLE = new Set(['ENOTFOUND', 'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'ERR_TLS_CERT_ALTNAME_INVALID']);
const TRANSIENT: ReadonlySet<ErrorClass> = new Set(['rate_limited', 'overloaded', 'server_error', 'timeout', 'stream_stall', 'stream_cut', 'connection_reset']);
const MODEL_NOT_FOUND_CODES = new Set(['model_not_found', 'not_found_error', 'NotFoundError', 'DeploymentNotFound']);
const MAX_QUOTE = 200;

/** The provider's base address as configured, or the public default of its type. */
export function endpointOf(provider: Pick<Provider, 'type' | 'baseURL'>): string {
  if (provider.baseURL !== undefined) return provider.baseURL;
  if (provider.type === 'openai') return OPENAI_BASE_URL;
  if (provider.type === 'anthropic') return ANTHROPIC_BASE_URL;
  return provider.type === 'mock' ? 'in-process mock' : '(no baseURL)';
}

/** Whether a transient failure is worth one more try before the drill reports it. */
export function isTransient(error: UpstreamError): boolean {
  if (error.class === 'connection_reset' && error.code !== undefined && UNREACHABLE.has(error.code)) return false;
  return TRANSIENT.has(error.class);
}

/** Reasoning models refuse `max_tokens` and want `max_completion_tokens`: the drill then asks again that way. */
export function wantsMaxCompletionTokens(error: UpstreamError): boolean {
  return error.class === 'bad_request' && /max_tokens/.test(error.message) && /max_completion_tokens/.test(error.message);
}

const quote = (text: string) => `"${text.length > MAX_QUOTE ? `${text.slice(0, MAX_QUOTE)}…` : text}"`;

export function diagnose(input: DiagnosisInput): Verdict {
  const { outcome, provider, source, step } = input;
  const keyPath = source ? formatPath(['spec', 'environments', input.environmentIndex, 'keys', provider.name, source.index]) : undefined;
  switch (outcome.kind) {
    case 'ok': {
      const answered = outcome.answered;
      const drifted = answered !== undefined && provider.type !== 'mock' && !answered.startsWith(step.modelAsked);
      const deployment = provider.deployments?.[step.modelAsked];
      const warning = !drifted
        ? undefined
        : deployment !== undefined
          ? `${step.path}: Azure deployment "${deployment}" answered as model "${answered}", not "${step.modelAsked}": check that spec.providers[${step.providerIndex}].deployments maps each model to a deployment of that model`
          : `${step.path}: provider "${provider.name}" answered as model "${answered}" although "${step.modelAsked}" was asked: the name may be an alias that moved; pin a dated snapshot in ${step.modelFrom}`;
      return { result: 'ok', reachable: true, authenticated: true, found: true, transient: false, ...(warning ? { warning } : {}) };
    }
    case 'no-key':
      return {
        result: 'no_key',
        reachable: undefined,
        authenticated: undefined,
        found: undefined,
        transient: false,
        problem: source
          ? `key source ${source.index} of provider "${provider.name}" has no key (${source.from}: ${source.problem ?? 'missing'})`
          : `provider "${provider.name}" (${provider.type}) needs a key and the environment declares none`,
        hint: source ? `provide it, or remove ${keyPath} if it was rotated out` : `add a key source to ${formatPath(['spec', 'environments', input.environmentIndex, 'keys', provider.name])}`,
      };
    case 'unsendable':
      return { result: 'not_sent', reachable: undefined, authenticated: undefined, found: undefined, transient: false, problem: outcome.message, hint: `fix spec.providers[${step.providerIndex}]` };
    case 'failed':
      return failed(input, outcome.error, keyPath);
  }
}

function failed(input: DiagnosisInput, error: UpstreamError, keyPath: string | undefined): Verdict {
  const { provider, source, step } = input;
  const at = `spec.providers[${step.providerIndex}]`;
  const endpoint = endpointOf(provider);
  const who = `provider "${provider.name}" (${provider.type})`;
  const keyRef = source ? `key source ${source.index} of provider "${provider.name}"` : who;
  const status = error.status === undefined ? '' : `${error.status}`;
  const code = error.code ?? '';
  const azure = provider.type === 'azure-openai';
  const base = { result: error.class, transient: isTransient(error) } as const;

  if (error.class === 'auth_failed') {
    const rotate = keyPath ? `rotate or remove it (${keyPath}, read from ${source?.from})` : `give ${who} a key in spec.environments[${input.environmentIndex}].keys`;
    const problem = error.status === 403 ? `${keyRef} refused (403) for model "${step.modelAsked}": ${quote(error.message)}` : `${keyRef} rejected (${status || 'auth'})`;
    const hint = error.status === 403 ? `give the key access to the model, or ${rotate}` : azure ? `${rotate}; Azure also answers 401 to a key of another resource, so check ${at}.baseURL too` : rotate;
    return { ...base, reachable: true, authenticated: false, found: null, problem, hint };
  }
  if (azure && (error.status === 400 || error.status === 404) && /api[- ]?versions?\b/i.test(error.message)) {
    return {
      ...base,
      reachable: true,
      authenticated: null,
      found: null,
      problem: `api-version ${provider.apiVersion ?? '(none)'} rejected by ${endpoint}: ${quote(error.message)}`,
      hint: `set ${at}.apiVersion to a version the resource supports, e.g. ${SUGGESTED_AZURE_API_VERSION}`,
    };
  }
  if (azure && code === 'DeploymentNotFound') {
    const deployment = provider.deployments?.[step.modelAsked] ?? '(none)';
    return {
      ...base,
      reachable: true,
      authenticated: true,
      found: false,
      problem: `Azure deployment "${deployment}" not found at ${endpoint}`,
      hint: `check ${at}.deployments (model "${step.modelAsked}" → "${deployment}") against the deployments of that resource`,
    };
  }
  if (azure && error.status === 404) {
    return {
      ...base,
      reachable: true,
      authenticated: null,
      found: null,
      problem: `${input.url ?? endpoint} not found: ${quote(error.message)}`,
      hint: `check ${at}.baseURL (the resource endpoint, https://NAME.openai.azure.com, without /openai) and ${at}.apiVersion: Azure answers this for a wrong address and for an unsupported api-version alike`,
    };
  }
  if (MODEL_NOT_FOUND_CODES.has(code) || (error.status === 404 && code !== 'unknown_url' && (/model/i.test(error.message) || error.message.includes(step.modelAsked)))) {
    return {
      ...base,
      reachable: true,
      authenticated: true,
      found: false,
      problem: `model "${step.modelAsked}" not found at ${who} (${endpoint}): ${quote(error.message)}`,
      hint: `check ${step.modelFrom}, or the key's access to that model`,
    };
  }
  if (error.status === 404 || code === 'unknown_url') {
    const v1 = provider.type === 'openai-compatible' ? ' (OpenAI-compatible servers usually serve under /v1)' : '';
    return { ...base, reachable: true, authenticated: null, found: null, problem: `${input.url ?? endpoint} not found (404)`, hint: `check ${at}.baseURL${v1}` };
  }
  if (error.class === 'quota_exhausted') {
    return {
      ...base,
      reachable: true,
      authenticated: true,
      found: null,
      problem: `${keyRef}: quota exhausted (${code || status})`,
      hint: `add credit or raise the quota of the account behind the key; until then the gateway skips this step for 15 minutes at a time`,
    };
  }
  if (error.class === 'connection_reset' && !isTransient(error)) {
    return {
      ...base,
      reachable: false,
      authenticated: undefined,
      found: undefined,
      problem: `cannot reach ${endpoint} (${code})`,
      hint: `check ${at}.baseURL, and that egress to it is allowed from where the gateway runs`,
    };
  }
  if (base.transient) {
    const rateLimited = error.class === 'rate_limited';
    return {
      ...base,
      reachable: error.status === undefined ? null : true,
      authenticated: rateLimited ? true : null,
      found: null,
      problem: `${who} failed the drill with ${error.class}${status ? ` (${status})` : ''}: ${quote(error.message)}`,
      hint: rateLimited
        ? 'transient: the key is at its rate limit; re-run the drill later (the gateway retries and fails over on 429)'
        : `transient: re-run the drill; if it persists, the provider is down or slow from here (raise --timeout for slow models)`,
    };
  }
  // content_filtered, context_length_exceeded, bad_request: the provider refuses the request itself, and the gateway
  // does not fail over from these, so real requests through this step would be refused as well.
  return {
    ...base,
    reachable: true,
    authenticated: null,
    found: null,
    problem: `${who} refused the drill's one-word request (${[status, code].filter(Boolean).join(' ')}): ${quote(error.message)}`,
    hint: `real requests through this step would be refused too: check ${at} (type, baseURL${azure ? ', apiVersion' : ''}) and ${step.modelFrom}`,
  };
}

// -------------------------------------------------------------------------------------------------------------
// Prices

/**
 * The price of a model snapshot, or undefined when none is known. The CLI passes
 * `(model) => priceOf(model, route.spec.prices)?.price` (src/gateway/prices.ts): the route's overrides, else the
 * built-in table. Unknown prices show the tokens instead of a cost, never a zero.
 */
export type PriceOf = (model: string) => Price | undefined;

export function costOf(usage: Usage | undefined, price: Price | undefined): number | undefined {
  if (!usage || !price) return undefined;
  return (usage.prompt_tokens * price.input + usage.completion_tokens * price.output) / 1_000_000;
}

// -------------------------------------------------------------------------------------------------------------
// The report

export interface DrillRow {
  step: DrillStep;
  provider: Pick<Provider, 'name' | 'type'>;
  /** On Azure, the deployment the model maps to. */
  deployment?: string;
  keyIndex?: number;
  url?: string;
  outcome: ProbeOutcome;
  verdict: Verdict;
  costUSD?: number;
}

export interface DrillFailure {
  step: string;
  model: string;
  flag?: string;
  provider: string;
  keySources: number[];
  problem: string;
  hint: string;
  transient: boolean;
}

export interface DrillReport {
  route: string;
  environment: string;
  sources: KeySourceState[];
  rows: DrillRow[];
  /** Requests sent (retries included). */
  requests: number;
  probes: number;
  missingKeys: string[];
  failures: DrillFailure[];
  warnings: string[];
  ok: boolean;
}

export interface ReportInput {
  route: LLMRoute;
  environment: string;
  sources: KeySourceState[];
  steps: DrillStep[];
  /** Per probe id. */
  outcomes: ReadonlyMap<string, ProbeOutcome>;
  /** Per probe id, the URL of its request. */
  urls?: ReadonlyMap<string, string>;
  prices: PriceOf;
}

/** Joins steps, key sources and probe outcomes into rows, judges each, and lists failures (merged per step and problem). */
export function buildReport(input: ReportInput): DrillReport {
  const { route, environment, sources } = input;
  const environmentIndex = route.spec.environments.findIndex((e) => e.name === environment);
  const rows: DrillRow[] = [];
  for (const step of input.steps) {
    const provider = route.spec.providers[step.providerIndex];
    if (!provider) throw new Error(`${step.path}: no provider "${step.provider}" in spec.providers`);
    const own = sources.filter((s) => s.provider === provider.name);
    for (const source of own.length > 0 ? own : [undefined]) {
      const id = probeId(provider.name, step.modelAsked, source?.index);
      const outcome = input.outcomes.get(id) ?? (source?.problem !== undefined || (source === undefined && needsKey(provider)) ? { kind: 'no-key' as const } : undefined);
      if (!outcome) throw new Error(`no outcome for probe ${id}`);
      const url = input.urls?.get(id);
      const verdict = diagnose({ step, provider, environmentIndex, ...(source ? { source } : {}), ...(url ? { url } : {}), outcome });
      const deployment = provider.type === 'azure-openai' ? provider.deployments?.[step.modelAsked] : undefined;
      const cost = outcome.kind === 'ok' ? costOf(outcome.usage, input.prices(step.modelAsked)) : undefined;
      rows.push({
        step,
        provider: { name: provider.name, type: provider.type },
        ...(deployment ? { deployment } : {}),
        ...(source ? { keyIndex: source.index } : {}),
        ...(url ? { url } : {}),
        outcome,
        verdict,
        ...(cost === undefined ? {} : { costUSD: cost }),
      });
    }
  }
  const failures = new Map<string, DrillFailure>();
  for (const row of rows) {
    const { problem, hint } = row.verdict;
    if (problem === undefined) continue;
    const key = JSON.stringify([stepName(row.step), problem, hint]);
    const known = failures.get(key);
    if (known) {
      if (row.keyIndex !== undefined) known.keySources.push(row.keyIndex);
      continue;
    }
    failures.set(key, {
      step: stepName(row.step),
      model: row.step.model,
      ...(row.step.flag ? { flag: row.step.flag } : {}),
      provider: row.provider.name,
      keySources: row.keyIndex === undefined ? [] : [row.keyIndex],
      problem,
      hint: hint ?? '',
      transient: row.verdict.transient,
    });
  }
  const warnings = [...new Set(rows.flatMap((r) => (r.verdict.warning ? [r.verdict.warning] : [])))];
  const sent = [...input.outcomes.values()];
  const missingKeys = missingKeyMessages(route, environment, sources);
  return {
    route: route.metadata.name,
    environment,
    sources: [...sources],
    rows,
    requests: sent.reduce((n, o) => n + (o.kind === 'ok' || o.kind === 'failed' ? o.attempts : 0), 0),
    probes: sent.filter((o) => o.kind === 'ok' || o.kind === 'failed').length,
    missingKeys,
    failures: [...failures.values()],
    warnings,
    ok: failures.size === 0 && missingKeys.length === 0,
  };
}

// -------------------------------------------------------------------------------------------------------------
// Text

const check = (value: Check) => (value === undefined ? '-' : value === null ? '?' : value ? 'yes' : 'no');

export function formatLatency(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(1)}s`;
}

export function formatCost(row: Pick<DrillRow, 'costUSD' | 'outcome'>): string {
  if (row.costUSD !== undefined) return `$${row.costUSD.toPrecision(2)}`;
  // No price known for the model: the tokens are what a price would multiply.
  if (row.outcome.kind === 'ok' && row.outcome.usage) return `${row.outcome.usage.prompt_tokens}+${row.outcome.usage.completion_tokens} tok`;
  return '-';
}

/** Left-aligned columns two spaces apart; the last column is not padded. */
export function columns(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, [...cell].length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell + ' '.repeat((widths[i] ?? 0) - [...cell].length))).join('  ').trimEnd()).join('\n');
}

export const TABLE_HEADER = ['MODEL', 'STEP', 'PROVIDER', 'MODEL ASKED', 'KEY', 'RESULT', 'REACHABLE', 'AUTH', 'FOUND', 'LATENCY', 'COST'] as const;

export function formatTable(report: DrillReport): string {
  const lines = report.rows.map((row) => [
    row.step.flag ? `${row.step.model} [flag ${row.step.flag}]` : row.step.model,
    row.step.path,
    `${row.provider.name} (${row.provider.type})`,
    row.deployment ? `${row.step.modelAsked} → ${row.deployment}` : row.step.modelAsked,
    row.keyIndex === undefined ? 'none' : `#${row.keyIndex}`,
    row.verdict.result,
    check(row.verdict.reachable),
    check(row.verdict.authenticated),
    check(row.verdict.found),
    row.outcome.kind === 'ok' || row.outcome.kind === 'failed' ? formatLatency(row.outcome.latencyMs) : '-',
    formatCost(row),
  ]);
  return columns([[...TABLE_HEADER], ...lines]);
}

export function formatSources(report: DrillReport): string {
  if (report.sources.length === 0) return `key sources: none declared in environment "${report.environment}"`;
  const lines = report.sources.map((s) => [`  ${s.provider} #${s.index}`, s.from, s.fingerprint ?? `no key (${s.problem ?? 'missing'})`]);
  return `key sources of environment "${report.environment}":\n${columns(lines)}`;
}

export function formatFailure(failure: DrillFailure): string {
  return `  ${failure.step}: ${failure.problem}: ${failure.hint}`;
}

export function summaryLine(report: DrillReport): string {
  const steps = new Set(report.rows.map((r) => stepName(r.step)));
  const models = new Set(report.rows.map((r) => r.step.model));
  const scope = `${steps.size} step${steps.size === 1 ? '' : 's'} of ${models.size} model${models.size === 1 ? '' : 's'}, ${report.requests} request${report.requests === 1 ? '' : 's'}`;
  // Per request sent: two steps sharing a (provider, model) pair share its cost.
  const costs = new Map(report.rows.map((r) => [probeId(r.provider.name, r.step.modelAsked, r.keyIndex), r.costUSD ?? 0]));
  const total = [...costs.values()].reduce((sum, cost) => sum + cost, 0);
  const cost = report.rows.some((r) => r.costUSD !== undefined) ? `, $${total.toPrecision(2)}` : '';
  if (report.ok) return `drill passed: every step answered (${scope}${cost})`;
  const failing = new Set(report.failures.map((f) => f.step));
  const transient = report.failures.length > 0 && report.failures.every((f) => f.transient);
  const missing = report.missingKeys.length > 0 && failing.size === 0 ? 'keys are missing' : `${failing.size} of ${steps.size} step${steps.size === 1 ? '' : 's'} would fail`;
  return `drill FAILED: ${missing} (${scope}${cost})${transient ? '; every failure looks transient: re-run before changing anything' : ''}`;
}

/** The whole text report: key sources, the table, warnings, failures with what to do, and the final line. */
export function formatReport(report: DrillReport): string {
  const parts = [`llmroute drill: route "${report.route}", environment "${report.environment}"`, '', formatSources(report), '', formatTable(report), ''];
  if (report.warnings.length) parts.push('warnings:', ...report.warnings.map((w) => `  ${w}`), '');
  if (report.failures.length) parts.push('failures:', ...report.failures.map(formatFailure), '');
  parts.push(summaryLine(report));
  return `${parts.join('\n')}\n`;
}

const checkJSON = (value: Check) => (value === undefined ? null : value);

/** The machine-readable report: no keys, only fingerprints. */
export function reportJSON(report: DrillReport): unknown {
  return {
    route: report.route,
    environment: report.environment,
    ok: report.ok,
    requests: report.requests,
    keySources: report.sources.map((s) => ({ provider: s.provider, index: s.index, from: s.from, fingerprint: s.fingerprint ?? null, problem: s.problem ?? null })),
    steps: report.rows.map((row) => ({
      model: row.step.model,
      flag: row.step.flag ?? null,
      step: row.step.path,
      provider: row.provider.name,
      providerType: row.provider.type,
      modelAsked: row.step.modelAsked,
      deployment: row.deployment ?? null,
      url: row.url ?? null,
      keySource: row.keyIndex ?? null,
      result: row.verdict.result,
      reachable: checkJSON(row.verdict.reachable),
      authenticated: checkJSON(row.verdict.authenticated),
      found: checkJSON(row.verdict.found),
      latencyMs: row.outcome.kind === 'ok' || row.outcome.kind === 'failed' ? row.outcome.latencyMs : null,
      attempts: row.outcome.kind === 'ok' || row.outcome.kind === 'failed' ? row.outcome.attempts : 0,
      status: row.outcome.kind === 'failed' ? (row.outcome.error.status ?? null) : row.outcome.kind === 'ok' ? 200 : null,
      code: row.outcome.kind === 'failed' ? (row.outcome.error.code ?? null) : null,
      message: row.outcome.kind === 'failed' ? row.outcome.error.message : row.outcome.kind === 'unsendable' ? row.outcome.message : null,
      answeredModel: row.outcome.kind === 'ok' ? (row.outcome.answered ?? null) : null,
      usage: row.outcome.kind === 'ok' ? (row.outcome.usage ?? null) : null,
      costUSD: row.costUSD ?? null,
      problem: row.verdict.problem ?? null,
      hint: row.verdict.hint ?? null,
      transient: row.verdict.transient,
      warning: row.verdict.warning ?? null,
    })),
    failures: report.failures,
    warnings: report.warnings,
    missingKeys: report.missingKeys,
  };
}
