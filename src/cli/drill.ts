/**
 * `llmroute drill`: the failover rehearsal. One minimal request (one word in, `max_tokens: 1` out) through every
 * step of every model's fallback chain, each distinct (provider, model) once per key source of the provider, with
 * the environment's keys found the way `llmroute up` finds them: `--keys-dir DIR` laid out like the mounted Secrets
 * (`DIR/keys/<provider>/<n>/value`) or `LLMROUTE_KEY_<PROVIDER>[_<N>]`. Requests go through the gateway's own
 * adapters, transport and streaming attempt, so what the drill proves is what the gateway will send.
 * What an answer means and how it is printed is decided in src/gateway/drill.ts; this file only does the I/O.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { compileEnvironment, environmentOf } from '../api/compile.js';
import { loadRouteEnvironment } from './route-environment.js';
import type { CompiledProvider } from '../api/gateway-config.js';
import { keyMounts, SECRETS_ROOT } from '../api/mounts.js';
import { fingerprint } from '../api/names.js';
import { DURATION, durationToMilliseconds } from '../api/patterns.js';
import { needsKey } from '../api/rules.js';
import type { LLMRoute } from '../api/schema.js';
import { attempt } from '../gateway/attempt.js';
import {
  buildReport,
  drillRequest,
  drillSteps,
  formatReport,
  isTransient,
  planProbes,
  reportJSON,
  wantsMaxCompletionTokens,
  type KeySourceState,
  type Probe,
  type ProbeOutcome,
} from '../gateway/drill.js';
import { POLICIES } from '../gateway/errors.js';
import { priceOf } from '../gateway/prices.js';
import type { ProviderAdapter } from '../gateway/providers/adapter.js';
import { adapterFor } from '../gateway/providers/index.js';
import { MockTransport } from '../gateway/providers/mock.js';
import { openai } from '../gateway/providers/openai.js';
import { HttpTransport, type Transport } from '../gateway/transport.js';
import { keyVariable } from './up.js';

export const DRILL_USAGE = 'llmroute drill -f ROUTE.yaml [--env NAME] [--keys-dir DIR] [--timeout 20s] [--json]';

/** Probes in flight at once: enough to finish quickly, few enough not to trip a provider's rate limit. */
const CONCURRENCY = 4;
/** A request that was refused for `max_tokens`, then a transient failure retried once. */
const MAX_ATTEMPTS = 3;
/** Longest wait before retrying a transient failure, whatever the provider's Retry-After says. */
const MAX_RETRY_WAIT_MS = 5_000;
/**
 * The mock's dice: a mock that always fails (`failureRatio: 1`) fails the drill, one that fails only sometimes passes,
 * so the drill of a route with mocks is deterministic.
 */
const MOCK_ROLL = () => 1 - 1e-9;

/** Every key source of the environment: where it was looked for, and its value or why there is none. */
async function readKeySources(route: LLMRoute, environment: string, keysDir: string | undefined): Promise<{ sources: KeySourceState[]; values: Map<string, string> }> {
  const sources: KeySourceState[] = [];
  const values = new Map<string, string>();
  for (const mount of keyMounts(route, environmentOf(route, environment), keysDir ?? SECRETS_ROOT)) {
    const from = keysDir ? mount.file : keyVariable(mount.provider, mount.index);
    let raw: string | undefined;
    let problem: string | undefined;
    if (keysDir) {
      try {
        raw = await readFile(mount.file, 'utf8');
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        problem = code === 'ENOENT' ? 'no such file' : `cannot be read (${code ?? String(error)})`;
      }
    } else {
      raw = process.env[from];
      if (raw === undefined) problem = 'not set';
    }
    // Trimmed like the gateway's key store trims a mounted key.
    const value = raw?.trim();
    if (raw !== undefined && !value) problem = 'empty';
    if (value && problem === undefined) {
      values.set(keyId(mount.provider, mount.index), value);
      sources.push({ provider: mount.provider, index: mount.index, from, fingerprint: fingerprint(value) });
    } else {
      sources.push({ provider: mount.provider, index: mount.index, from, problem: problem ?? 'missing' });
    }
  }
  return { sources, values };
}

const keyId = (provider: string, index: number) => `${provider}#${index}`;

interface ProbeRun {
  providers: ReadonlyMap<string, CompiledProvider>;
  keys: ReadonlyMap<string, string>;
  http: HttpTransport;
  mocks: Map<string, MockTransport>;
  timeoutMs: number;
}

function transportFor(provider: CompiledProvider, run: ProbeRun): Transport {
  if (provider.type !== 'mock') return run.http;
  let mock = run.mocks.get(provider.name);
  if (!mock) {
    mock = new MockTransport(provider.name, provider.mock ?? { latencyMs: 0, failureRatio: 0, failureKind: 'server-error' }, MOCK_ROLL);
    run.mocks.set(provider.name, mock);
  }
  return mock;
}

/** The mock speaks OpenAI's wire format, as in the gateway's runtime. */
const adapterOf = (provider: CompiledProvider): ProviderAdapter => (provider.type === 'mock' ? openai : (adapterFor(provider.type) ?? openai));

/** Sends one probe: a streaming attempt, exactly as the gateway would make it, retried once if transient. */
async function runProbe(probe: Probe, run: ProbeRun): Promise<{ outcome: ProbeOutcome; url?: string }> {
  const provider = run.providers.get(probe.provider) as CompiledProvider;
  const key = probe.keyIndex === undefined ? undefined : run.keys.get(keyId(probe.provider, probe.keyIndex));
  const target = { provider, model: probe.modelAsked, key };
  const adapter = adapterOf(provider);
  const transport = transportFor(provider, run);
  let request = drillRequest(probe.modelAsked);
  let url: string;
  try {
    url = adapter.chatRequest(request, target).url;
  } catch (error) {
    return { outcome: { kind: 'unsendable', message: (error as Error).message } };
  }
  let retried = false;
  for (let attempts = 1; ; attempts++) {
    const started = Date.now();
    const result = await attempt({
      transport,
      adapter,
      target,
      request,
      firstTokenMs: run.timeoutMs,
      idleMs: run.timeoutMs,
      deadline: started + run.timeoutMs,
      clientSignal: new AbortController().signal,
      onChunk: () => undefined,
    });
    if (result.kind === 'complete') {
      return { url, outcome: { kind: 'ok', latencyMs: result.durationMs, attempts, ...(result.usage ? { usage: result.usage } : {}), ...(result.model ? { answered: result.model } : {}) } };
    }
    if (result.kind === 'client-gone') throw new Error('unreachable: the drill never aborts an attempt itself');
    const { error } = result;
    if (attempts < MAX_ATTEMPTS && request.max_tokens !== undefined && wantsMaxCompletionTokens(error)) {
      const { max_tokens: _maxTokens, ...rest } = request;
      request = { ...rest, max_completion_tokens: 1 };
      continue;
    }
    if (attempts < MAX_ATTEMPTS && !retried && POLICIES[error.class].retry && isTransient(error)) {
      retried = true;
      await sleep(Math.min(error.retryAfterMs ?? 1000, MAX_RETRY_WAIT_MS));
      continue;
    }
    return { url, outcome: { kind: 'failed', latencyMs: result.durationMs, attempts, error } };
  }
}

async function inPool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export async function drillCommand(args: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  let values;
  let timeoutMs: number;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        file: { type: 'string', short: 'f' },
        env: { type: 'string' },
        'keys-dir': { type: 'string' },
        timeout: { type: 'string', default: '20s' },
        json: { type: 'boolean', default: false },
      },
    }));
    if (!values.file) throw new Error('name the route with -f ROUTE.yaml');
    timeoutMs = durationToMilliseconds(values.timeout);
    if (!new RegExp(DURATION).test(values.timeout) || timeoutMs <= 0) throw new Error(`--timeout takes a duration such as 20s or 1m, not "${values.timeout}"`);
  } catch (error) {
    err.write(`llmroute drill: ${(error as Error).message}\nusage: ${DRILL_USAGE}\n`);
    return 2;
  }
  const loaded = await loadRouteEnvironment('drill', values.file, values.env, err);
  if (typeof loaded === 'number') return loaded;
  const { route, environment } = loaded;
  const keysDir = values['keys-dir'] ? resolve(values['keys-dir']) : undefined;

  const { sources, values: keys } = await readKeySources(route, environment, keysDir);
  const config = compileEnvironment(route, environment, { secretsRoot: keysDir ?? SECRETS_ROOT });
  const providers = new Map(config.providers.map((p) => [p.name, p]));
  const steps = drillSteps(route, environment);
  // A probe whose key source gave no key is not sent; the report shows it as `no_key`.
  const probes = planProbes(steps, sources).filter((p) => {
    const provider = providers.get(p.provider) as CompiledProvider;
    return p.keyIndex === undefined ? !needsKey(provider) : keys.has(keyId(p.provider, p.keyIndex));
  });

  if (!values.json) err.write(`llmroute drill: ${probes.length} probe${probes.length === 1 ? '' : 's'} of "${route.metadata.name}" environment "${environment}" (timeout ${values.timeout})\n`);
  const run: ProbeRun = { providers, keys, http: new HttpTransport({ connections: CONCURRENCY }), mocks: new Map(), timeoutMs };
  const outcomes = new Map<string, ProbeOutcome>();
  const urls = new Map<string, string>();
  try {
    await inPool(probes, CONCURRENCY, async (probe) => {
      const { outcome, url } = await runProbe(probe, run);
      outcomes.set(probe.id, outcome);
      if (url) urls.set(probe.id, url);
    });
  } finally {
    await run.http.close();
    await Promise.all([...run.mocks.values()].map((m) => m.close()));
  }

  const overrides = route.spec.prices ?? {};
  const report = buildReport({ route, environment, sources, steps, outcomes, urls, prices: (model) => priceOf(model, overrides)?.price });
  if (report.missingKeys.length) {
    err.write(`llmroute drill: "${route.metadata.name}" environment "${environment}" is missing keys:\n${report.missingKeys.map((m) => `  - ${m}`).join('\n')}\n`);
  }
  out.write(values.json ? `${JSON.stringify(reportJSON(report), null, 2)}\n` : formatReport(report));
  return report.ok ? 0 : 1;
}
