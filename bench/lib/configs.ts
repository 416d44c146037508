/**
 * What each target is configured with. llmroute's configs are compiled from LLMRoute objects by the same
 * `compileEnvironment` the controller uses, with key and client-token files written where the config points, as the
 * kubelet would mount them. Portkey gets its routing config in the `x-portkey-config` header (its open-source
 * gateway has no config file); LiteLLM gets a proxy config file.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { API_VERSION, KIND } from '../../src/api/group.js';
import { compileEnvironment } from '../../src/api/compile.js';
import { LLMRoute, type LLMRouteInput } from '../../src/api/schema.js';
import { CLIENT_TOKEN, MODEL, PROVIDER_KEY } from './shared.js';

type Spec = LLMRouteInput['spec'];
type EnvironmentInput = Spec['environments'][number];

/** The llmroute configurations measured, from nothing but one provider to every feature on. */
export const LLMROUTE_VARIANTS = ['minimal', 'auth', 'budget', 'full', 'fallback'] as const;
export type LlmrouteVariant = (typeof LLMROUTE_VARIANTS)[number];

export const LLMROUTE_VARIANT_NOTES: Record<LlmrouteVariant, string> = {
  minimal: 'one provider, `auth: none`, no budget (metrics and the request log are always on)',
  auth: 'minimal + client token auth',
  budget: 'minimal + an environment budget (reserve at admission, settle after)',
  full: 'two-provider fallback chain, client token auth, environment and client budgets, default retry and circuit breaker',
  fallback: 'full, with the primary answering 503 on every request (breaker threshold raised so that every request tries the primary)',
};

const BIG_BUDGET = { daily: 1_000_000, monthly: 10_000_000, alertAt: [0.8, 0.95] };

function routeFor(variant: LlmrouteVariant, fake: string): LLMRoute {
  const primary = { name: 'primary', type: 'openai' as const, baseURL: `${fake}/v1` };
  const secondary = { name: 'secondary', type: 'openai' as const, baseURL: `${fake}/secondary/v1` };
  const failing = { name: 'primary', type: 'openai' as const, baseURL: `${fake}/fail/v1` };
  const withAuth = variant === 'auth' || variant === 'full' || variant === 'fallback';
  const chain = variant === 'full' || variant === 'fallback';
  const providers = variant === 'fallback' ? [failing, secondary] : chain ? [primary, secondary] : [primary];
  const environment: EnvironmentInput = {
    name: 'bench',
    keys: Object.fromEntries(providers.map((p) => [p.name, [{ secretRef: { name: `${p.name}-key`, key: 'apiKey' } }]])),
    ...(variant === 'budget' || chain ? { budget: BIG_BUDGET } : {}),
    gateway: { replicas: 1 },
  };
  const spec: Spec = {
    providers,
    models: [
      {
        name: 'chat',
        pin: MODEL,
        maxOutputTokens: 1024,
        fallback: chain ? [{ provider: 'primary' }, { provider: 'secondary' }] : [{ provider: 'primary' }],
      },
    ],
    ...(variant === 'fallback' ? { circuitBreaker: { minRequests: 100_000 } } : {}),
    auth: withAuth ? 'tokens' : 'none',
    ...(withAuth ? { clients: [{ name: 'bench', tokenSecretRef: { name: 'client-bench', key: 'token' }, ...(chain ? { budget: BIG_BUDGET } : {}) }] } : {}),
    environments: [environment],
  };
  return LLMRoute.parse({ apiVersion: API_VERSION, kind: KIND, metadata: { name: 'bench', namespace: 'bench' }, spec });
}

async function write(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text);
}

/** Compiles the variant into `<dir>/gateway.json`, with its secret files under `<dir>`; returns the config path. */
export async function writeLlmrouteConfig(variant: LlmrouteVariant, fake: string, dir: string): Promise<string> {
  const config = compileEnvironment(routeFor(variant, fake), 'bench', { secretsRoot: dir });
  for (const provider of config.providers) for (const file of provider.keyFiles) await write(file, PROVIDER_KEY);
  for (const client of config.clients) await write(client.tokenFile, CLIENT_TOKEN);
  const path = join(dir, 'gateway.json');
  await write(path, JSON.stringify(config, null, 2));
  return path;
}

/** Portkey's gateway config: a fallback strategy over two OpenAI targets (the first failing for the fallback path). */
export function portkeyConfig(fake: string, failing: boolean): string {
  const target = (base: string) => ({ provider: 'openai', api_key: PROVIDER_KEY, custom_host: base });
  return JSON.stringify({
    strategy: { mode: 'fallback' },
    targets: [target(failing ? `${fake}/fail/v1` : `${fake}/v1`), target(`${fake}/secondary/v1`)],
  });
}

/**
 * LiteLLM proxy: `chat` on the fake, falling back to `chat-secondary`; `chat-failover` always fails (503) and falls
 * back the same way. Auth by master key. No retries, no cooldowns (so every request tries the failing primary).
 * Budgets are not configured: LiteLLM enforces them only with its Postgres database.
 */
export async function writeLitellmConfig(fake: string, path: string): Promise<void> {
  const deployment = (name: string, base: string) => ({ model_name: name, litellm_params: { model: `openai/${MODEL}`, api_base: base, api_key: PROVIDER_KEY } });
  const config = {
    model_list: [deployment('chat', `${fake}/v1`), deployment('chat-secondary', `${fake}/secondary/v1`), deployment('chat-failover', `${fake}/fail/v1`)],
    router_settings: { num_retries: 0, disable_cooldowns: true, fallbacks: [{ chat: ['chat-secondary'] }, { 'chat-failover': ['chat-secondary'] }] },
    litellm_settings: { num_retries: 0, request_timeout: 30, telemetry: false, drop_params: true, set_verbose: false },
    general_settings: { master_key: CLIENT_TOKEN },
  };
  await write(path, stringify(config));
}
