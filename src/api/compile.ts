/**
 * Compiles one environment of a validated LLMRoute into the gateway config. Pure: the same route, environment and
 * flag percentages always give the same document, which is what makes its hash a trustworthy rollout trigger.
 */
import { GATEWAY_CONFIG_VERSION, type GatewayConfig } from './gateway-config.js';
import { clientMounts, keyMounts, redisMount, SECRETS_ROOT } from './mounts.js';
import { needsKey } from './rules.js';
import type { LLMRoute } from './schema.js';

export const API_PORT = 8080;
export const METRICS_PORT = 9090;

export interface CompileOptions {
  /** Flag percentages decided by the controller's rollouts; otherwise each flag's fixed `percent` (or 0). */
  flagPercents?: Readonly<Record<string, number>>;
  /** Where secrets are mounted; `llmroute up` points this at a local directory. */
  secretsRoot?: string;
}

export function environmentOf(route: LLMRoute, name: string) {
  const environment = route.spec.environments.find((e) => e.name === name);
  if (!environment) {
    const known = route.spec.environments.map((e) => `"${e.name}"`).join(', ');
    throw new Error(`LLMRoute "${route.metadata.name}" has no environment "${name}"; it has ${known}`);
  }
  return environment;
}

export function compileEnvironment(route: LLMRoute, environmentName: string, options: CompileOptions = {}): GatewayConfig {
  const environment = environmentOf(route, environmentName);
  const root = options.secretsRoot ?? SECRETS_ROOT;
  const keys = keyMounts(route, environment, root);
  const { spec } = route;
  const redis = redisMount(environment, root);
  return {
    version: GATEWAY_CONFIG_VERSION,
    route: { name: route.metadata.name, ...(route.metadata.namespace ? { namespace: route.metadata.namespace } : {}), environment: environment.name },
    listen: { port: API_PORT, metricsPort: METRICS_PORT },
    auth: spec.auth,
    clients: clientMounts(route, root).map((mount) => {
      const client = spec.clients?.find((c) => c.name === mount.client);
      return { name: mount.client, tokenFile: mount.file, ...(client?.budget ? { budget: client.budget } : {}), ...(client?.limits ? { limits: client.limits } : {}) };
    }),
    providers: spec.providers.map((provider) => ({
      ...provider,
      keyRequired: needsKey(provider),
      keyFiles: keys.filter((k) => k.provider === provider.name).map((k) => k.file),
    })),
    models: spec.models.map((model) => ({
      ...model,
      fallback: model.fallback.map((step) => ({ provider: step.provider, model: step.model ?? model.pin })),
    })),
    retry: spec.retry,
    circuitBreaker: spec.circuitBreaker,
    prices: spec.prices ?? {},
    ...(environment.budget ? { budget: environment.budget } : {}),
    flags: (spec.flags ?? [])
      .filter((flag) => !flag.environments || flag.environments.includes(environment.name))
      .map((flag) => ({ name: flag.name, stickyBy: flag.stickyBy, set: flag.set, percent: options.flagPercents?.[flag.name] ?? flag.percent ?? 0 })),
    ...(redis ? { redis: { urlFile: redis.file } } : {}),
    // The Deployment's replicas: no HorizontalPodAutoscaler is rendered. With one, this would have to be its
    // maxReplicas: a local share of limit / max is never too large, whereas limit / min lets a scaled-out fleet
    // overspend while Redis is away. The surge pod of a rolling update is not counted: it replaces one that drains.
    replicas: environment.gateway.replicas,
  };
}
