/**
 * Starts a real gateway in-process for end-to-end tests: an LLMRoute is compiled the way the controller compiles it
 * (`compileEnvironment`), its key and client-token files are written into a temporary secrets root, and
 * `startGateway` serves the result on loopback ports. Every log line the gateway writes is kept, in the exact form
 * production writes it, so tests can assert on logs (and on what never appears in them).
 */
import { mkdtemp, rename, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import OpenAI from 'openai';
import { API_VERSION, KIND } from '../../src/api/group.js';
import { compileEnvironment } from '../../src/api/compile.js';
import type { GatewayConfig } from '../../src/api/gateway-config.js';
import { LLMRoute, type LLMRouteInput } from '../../src/api/schema.js';
import { startGateway, type RunningGateway } from '../../src/gateway/gateway.js';
import { createLogger } from '../../src/log.js';

type Spec = LLMRouteInput['spec'];
type BudgetInput = NonNullable<Spec['environments'][number]['budget']>;

export interface TestGatewayOptions {
  providers: Spec['providers'];
  models: Spec['models'];
  retry?: Spec['retry'];
  circuitBreaker?: Spec['circuitBreaker'];
  /** Provider name → its keys, in order (one key file per entry). */
  keys?: Record<string, string[]>;
  /** Client name → token. With any, `auth: tokens`; without, `auth: none`. */
  clients?: Record<string, string>;
  reloadIntervalMs?: number;
  maxBodyBytes?: number;
  /** `spec.prices`: per model snapshot, USD per million tokens. */
  prices?: Spec['prices'];
  flags?: Spec['flags'];
  /** The environment's budget. */
  budget?: BudgetInput;
  /** Client name → its budget (the client must be in `clients`). */
  clientBudgets?: Record<string, BudgetInput>;
  /** Client name → its rate limits (the client must be in `clients`). */
  clientLimits?: Record<string, { requestsPerMinute?: number; tokensPerMinute?: number }>;
  /** `redis://…`: the environment gets `gateway.redis`, and the URL is written to the file the config points at. */
  redisUrl?: string;
}

export interface TestGateway {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly metricsUrl: string;
  readonly gateway: RunningGateway;
  readonly configPath: string;
  readonly config: GatewayConfig;
  /** Every line the gateway logged, raw JSON text as production writes it. */
  readonly logs: string[];
  /** An OpenAI SDK client for this gateway, with the SDK's own retries off. */
  client(apiKey?: string): OpenAI;
  /** The file the config points at for a provider's `index`th key. */
  keyFile(provider: string, index?: number): string;
  /** Replaces a key the way the kubelet updates a mounted Secret: atomically. */
  writeKey(provider: string, value: string, index?: number): Promise<void>;
  /** Replaces the config file (atomically) with this text. */
  writeConfig(text: string): Promise<void>;
  /** The metrics endpoint's text. */
  scrape(): Promise<string>;
  stop(graceMs?: number): Promise<void>;
}

async function atomicWrite(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(temporary, text);
  await rename(temporary, path);
}

export function buildRoute(options: TestGatewayOptions): LLMRoute {
  const clients = Object.keys(options.clients ?? {});
  return LLMRoute.parse({
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: 'e2e', namespace: 'test' },
    spec: {
      providers: options.providers,
      models: options.models,
      ...(options.retry ? { retry: options.retry } : {}),
      ...(options.circuitBreaker ? { circuitBreaker: options.circuitBreaker } : {}),
      ...(options.prices ? { prices: options.prices } : {}),
      ...(options.flags ? { flags: options.flags } : {}),
      auth: clients.length > 0 ? 'tokens' : 'none',
      ...(clients.length > 0
        ? { clients: clients.map((name) => ({ name, tokenSecretRef: { name: `client-${name}`, key: 'token' }, ...(options.clientBudgets?.[name] ? { budget: options.clientBudgets[name] } : {}), ...(options.clientLimits?.[name] ? { limits: options.clientLimits[name] } : {}) })) }
        : {}),
      environments: [
        {
          name: 'test',
          keys: Object.fromEntries(Object.entries(options.keys ?? {}).map(([provider, values]) => [provider, values.map((_, i) => ({ secretRef: { name: `${provider}-key-${i}`, key: 'apiKey' } }))])),
          ...(options.budget ? { budget: options.budget } : {}),
          ...(options.redisUrl ? { gateway: { redis: { urlSecretRef: { name: 'redis', key: 'url' } } } } : {}),
        },
      ],
    },
  });
}

export async function startTestGateway(options: TestGatewayOptions): Promise<TestGateway> {
  const root = await mkdtemp(join(tmpdir(), 'llmroute-e2e-'));
  const config = compileEnvironment(buildRoute(options), 'test', { secretsRoot: root });
  const keyFile = (provider: string, index = 0): string => {
    const file = config.providers.find((p) => p.name === provider)?.keyFiles[index];
    if (file === undefined) throw new Error(`provider "${provider}" has no key file ${index}`);
    return file;
  };
  for (const [provider, values] of Object.entries(options.keys ?? {})) {
    for (const [index, value] of values.entries()) await atomicWrite(keyFile(provider, index), value);
  }
  for (const client of config.clients) await atomicWrite(client.tokenFile, options.clients?.[client.name] ?? '');
  if (config.redis && options.redisUrl) await atomicWrite(config.redis.urlFile, options.redisUrl);
  const configPath = join(root, 'gateway.json');
  await atomicWrite(configPath, JSON.stringify(config, null, 2));

  const logs: string[] = [];
  const gateway = await startGateway({
    configPath,
    host: '127.0.0.1',
    port: 0,
    metricsPort: 0,
    log: createLogger({ level: 'debug', write: (line) => void logs.push(line) }),
    reloadIntervalMs: options.reloadIntervalMs ?? 60_000,
    ...(options.maxBodyBytes !== undefined ? { maxBodyBytes: options.maxBodyBytes } : {}),
  });
  let stopped = false;
  return {
    url: gateway.url,
    metricsUrl: gateway.metricsUrl,
    gateway,
    configPath,
    config,
    logs,
    client: (apiKey = 'unused') => new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey, maxRetries: 0, timeout: 20_000 }),
    keyFile,
    writeKey: (provider, value, index = 0) => atomicWrite(keyFile(provider, index), value),
    writeConfig: (text) => atomicWrite(configPath, text),
    scrape: async () => (await fetch(gateway.metricsUrl)).text(),
    async stop(graceMs = 2000) {
      if (stopped) return;
      stopped = true;
      await gateway.stop(graceMs);
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** A counter's value from Prometheus text, summed over series whose labels include every given one. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const match = /^[^{\s]+(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const series = match[1] ?? '';
    if (Object.entries(labels).every(([k, v]) => series.includes(`${k}="${v}"`))) total += Number(match[2]);
  }
  return total;
}
