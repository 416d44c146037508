/**
 * Starting the targets: the fake provider, the bare proxy, every llmroute variant, Portkey and LiteLLM, each in its
 * own process on loopback, and describing how to call each one. A target that cannot be installed or started is kept
 * with the reason, so that the results say why it has no numbers.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LLMROUTE_VARIANT_NOTES, portkeyConfig, writeLitellmConfig, writeLlmrouteConfig, type LlmrouteVariant } from './configs.js';
import { installLitellm, installPortkey, LITELLM_VERSION, PORTKEY_HONO_NODE_SERVER, PORTKEY_VERSION } from './install.js';
import { chatBody, type Endpoint } from './load.js';
import { freePort, startChild, waitForHttp, type Child } from './proc.js';
import { CLIENT_TOKEN, MODEL, PROVIDER_KEY } from './shared.js';

export type Group = 'baseline' | 'llmroute' | 'peer';

export interface Target {
  id: string;
  label: string;
  group: Group;
  /** What it runs and how it is configured. */
  config: string;
  endpoint?: Endpoint;
  /** The process whose memory and CPU are this target's (shared by a target and its fallback-path twin). */
  child?: Child;
  startupMs?: number;
  version?: string;
  /** Why there are no figures for it. */
  unavailable?: string;
}

export interface StartOptions {
  repo: string;
  work: string;
  log: (line: string) => void;
  competitors: boolean;
  /** Extra node flags for the llmroute children, e.g. `--cpu-prof`. */
  llmrouteNodeArgs?: string[];
  /** The compiled llmroute child (bench/lib/build.ts); without it, the TypeScript one runs under tsx. */
  llmrouteEntry?: string;
}

const NODE = process.execPath;
const TSX = ['--import', 'tsx'];

function endpoint(origin: string, path: string, model: string, headers: Record<string, string>): Endpoint {
  return { origin, path, headers: { 'content-type': 'application/json', ...headers }, body: chatBody(model, false), streamBody: chatBody(model, true) };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

export async function startFake(options: StartOptions): Promise<{ child: Child; url: string }> {
  const { child, announced } = await startChild({
    name: 'fake-provider',
    command: NODE,
    args: [...TSX, join(options.repo, 'bench/targets/fake-provider.ts')],
    cwd: options.repo,
    logFile: join(options.work, 'fake-provider.log'),
    announces: true,
  });
  return { child, url: announced.url as string };
}

export async function startLlmroute(variant: LlmrouteVariant, fake: string, options: StartOptions, suffix = ''): Promise<{ child: Child; url: string; startupMs: number }> {
  const dir = join(options.work, `llmroute-${variant}${suffix}`);
  const configPath = await writeLlmrouteConfig(variant, fake, dir);
  const started = performance.now();
  const { child, announced } = await startChild({
    name: `llmroute-${variant}`,
    command: NODE,
    args: [...(options.llmrouteNodeArgs ?? []), ...(options.llmrouteEntry ? [options.llmrouteEntry] : [...TSX, join(options.repo, 'bench/targets/llmroute.ts')]), configPath],
    cwd: options.repo,
    logFile: join(dir, 'gateway.log'),
    announces: true,
  });
  return { child, url: announced.url as string, startupMs: performance.now() - started };
}

export function llmrouteTarget(variant: LlmrouteVariant, started: { child: Child; url: string; startupMs: number }, version: string): Target {
  const authed = variant === 'auth' || variant === 'full' || variant === 'fallback';
  return {
    id: variant === 'full' ? 'llmroute' : `llmroute-${variant}`,
    label: variant === 'full' ? 'llmroute' : `llmroute (${variant})`,
    group: 'llmroute',
    config: LLMROUTE_VARIANT_NOTES[variant],
    endpoint: endpoint(started.url, '/v1/chat/completions', 'chat', authed ? bearer(CLIENT_TOKEN) : {}),
    child: started.child,
    startupMs: started.startupMs,
    version,
  };
}

/** Starts everything; returns the targets in a fixed order (baselines, llmroute, peers, then the fallback twins). */
export async function startTargets(options: StartOptions, llmrouteVersion: string): Promise<{ targets: Target[]; fake: Child; children: Child[] }> {
  const children: Child[] = [];
  const fake = await startFake(options);
  children.push(fake.child);
  options.log(`fake provider at ${fake.url}`);
  const targets: Target[] = [
    {
      id: 'direct',
      label: 'direct (no gateway)',
      group: 'baseline',
      config: 'the fake provider called directly: the floor every other figure is compared with',
      endpoint: endpoint(fake.url, '/v1/chat/completions', MODEL, bearer(PROVIDER_KEY)),
      child: fake.child,
    },
  ];

  const bareStarted = performance.now();
  const bare = await startChild({
    name: 'bare-proxy',
    command: NODE,
    args: [...TSX, join(options.repo, 'bench/targets/bare-proxy.ts'), fake.url],
    cwd: options.repo,
    logFile: join(options.work, 'bare-proxy.log'),
    announces: true,
  });
  children.push(bare.child);
  targets.push({
    id: 'bare',
    label: 'bare Node proxy',
    group: 'baseline',
    config: 'node:http + one undici Pool (keep-alive), bodies piped, nothing parsed',
    endpoint: endpoint(bare.announced.url as string, '/v1/chat/completions', MODEL, bearer(PROVIDER_KEY)),
    child: bare.child,
    startupMs: performance.now() - bareStarted,
  });

  const variants: LlmrouteVariant[] = ['full', 'minimal', 'auth', 'budget', 'fallback'];
  const started = await Promise.all(variants.map((variant) => startLlmroute(variant, fake.url, options)));
  for (const [i, variant] of variants.entries()) {
    const s = started[i] as Awaited<ReturnType<typeof startLlmroute>>;
    children.push(s.child);
    if (variant !== 'fallback') targets.push(llmrouteTarget(variant, s, llmrouteVersion));
  }
  const fallbackTwins: Target[] = [];
  const fallbackStarted = started[variants.indexOf('fallback')] as Awaited<ReturnType<typeof startLlmroute>>;
  fallbackTwins.push({ ...llmrouteTarget('fallback', fallbackStarted, llmrouteVersion), label: 'llmroute (fallback path)' });
  options.log(`llmroute variants started: ${variants.join(', ')}`);

  // Portkey.
  const portkey: Target = { id: 'portkey', label: 'Portkey gateway', group: 'peer', config: `@portkey-ai/gateway@${PORTKEY_VERSION} (node build/start-server.js --headless; @hono/node-server pinned to ${PORTKEY_HONO_NODE_SERVER}, see below), fallback strategy over two OpenAI targets (custom_host) in the x-portkey-config header; no auth, budgets or rate limits in the open-source gateway` };
  const portkeyFallback: Target = { id: 'portkey-fallback', label: 'Portkey (fallback path)', group: 'peer', config: 'Portkey, the first target of the fallback strategy answering 503' };
  if (!options.competitors) {
    portkey.unavailable = portkeyFallback.unavailable = 'skipped (--no-competitors)';
  } else {
    const installed = await installPortkey(options.log);
    if (!installed.ok) portkey.unavailable = portkeyFallback.unavailable = installed.reason;
    else {
      try {
        const port = await freePort();
        const t0 = performance.now();
        const { child } = await startChild({
          name: 'portkey',
          command: NODE,
          args: [installed.entry, `--port=${port}`, '--headless'],
          cwd: join(installed.entry, '..', '..'),
          env: { ...process.env, NODE_ENV: 'production' },
          logFile: join(options.work, 'portkey.log'),
        });
        children.push(child);
        const origin = `http://127.0.0.1:${port}`;
        await waitForHttp(`${origin}/`, child, 60_000);
        const normal = endpoint(origin, '/v1/chat/completions', MODEL, { ...bearer(PROVIDER_KEY), 'x-portkey-config': portkeyConfig(fake.url, false) });
        Object.assign(portkey, { endpoint: normal, child, startupMs: performance.now() - t0, version: installed.version });
        const failing = endpoint(origin, '/v1/chat/completions', MODEL, { ...bearer(PROVIDER_KEY), 'x-portkey-config': portkeyConfig(fake.url, true) });
        Object.assign(portkeyFallback, { endpoint: failing, child, version: installed.version });
        options.log(`Portkey ${installed.version} at ${origin}`);
      } catch (error) {
        portkey.unavailable = portkeyFallback.unavailable = `could not start: ${(error as Error).message}`;
      }
    }
  }
  targets.push(portkey);
  fallbackTwins.push(portkeyFallback);

  // LiteLLM.
  const litellm: Target = { id: 'litellm', label: 'LiteLLM proxy', group: 'peer', config: `litellm[proxy]==${LITELLM_VERSION} (1 uvicorn worker), model \`chat\` on the fake with a fallback deployment, master-key auth, no retries or cooldowns; budgets off (they need LiteLLM's Postgres database)` };
  const litellmFallback: Target = { id: 'litellm-fallback', label: 'LiteLLM (fallback path)', group: 'peer', config: 'LiteLLM, model `chat-failover` whose deployment answers 503, falling back to `chat-secondary`' };
  if (!options.competitors) {
    litellm.unavailable = litellmFallback.unavailable = 'skipped (--no-competitors)';
  } else {
    const installed = await installLitellm(options.log);
    if (!installed.ok) litellm.unavailable = litellmFallback.unavailable = installed.reason;
    else {
      try {
        const port = await freePort();
        const configPath = join(options.work, 'litellm.yaml');
        await writeLitellmConfig(fake.url, configPath);
        const t0 = performance.now();
        const { child } = await startChild({
          name: 'litellm',
          command: installed.entry,
          args: ['--config', configPath, '--host', '127.0.0.1', '--port', String(port), '--num_workers', '1'],
          cwd: options.work,
          // No network but loopback here: use the cost map the package ships, and send no telemetry.
          env: { ...process.env, LITELLM_LOCAL_MODEL_COST_MAP: 'True', LITELLM_LOG: 'ERROR', LITELLM_TELEMETRY: 'False', DISABLE_ADMIN_UI: 'True', PYTHONUNBUFFERED: '1' },
          logFile: join(options.work, 'litellm.log'),
        });
        children.push(child);
        const origin = `http://127.0.0.1:${port}`;
        await waitForHttp(`${origin}/health/liveliness`, child, 180_000);
        Object.assign(litellm, { endpoint: endpoint(origin, '/v1/chat/completions', 'chat', bearer(CLIENT_TOKEN)), child, startupMs: performance.now() - t0, version: installed.version });
        Object.assign(litellmFallback, { endpoint: endpoint(origin, '/v1/chat/completions', 'chat-failover', bearer(CLIENT_TOKEN)), child, version: installed.version });
        options.log(`LiteLLM ${installed.version} at ${origin} (${installed.note ?? ''})`);
      } catch (error) {
        litellm.unavailable = litellmFallback.unavailable = `could not start: ${(error as Error).message}`;
      }
    }
  }
  targets.push(litellm);
  fallbackTwins.push(litellmFallback);
  return { targets: [...targets, ...fallbackTwins], fake: fake.child, children };
}
