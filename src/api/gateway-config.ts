/**
 * The compiled gateway config: the contract between the control plane (controller, `cdk8s synth`, `llmroute up`)
 * and the data plane (the gateway). One document per route environment, versioned, validated on both sides, and free
 * of secrets by construction: keys and tokens appear only as paths of files mounted from Secrets, which is also what
 * lets the gateway pick up a rotated key without a restart.
 */
import { z } from 'zod';
import {
  Budget,
  CircuitBreaker,
  FallbackStep,
  Flag,
  MockSettings,
  Price,
  PROVIDER_TYPES,
  ProviderLimits,
  Retry,
  Timeouts,
} from './schema.js';

/** Bumped on any change the gateway of the previous version could not read. */
export const GATEWAY_CONFIG_VERSION = 'llmroute.dev/gateway-config/v1';

const filePath = z.string().min(1).max(4096).regex(/^\//, { message: 'must be an absolute file path' });

export const CompiledProvider = z.strictObject({
  name: z.string(),
  type: z.enum(PROVIDER_TYPES),
  baseURL: z.string().optional(),
  apiVersion: z.string().optional(),
  deployments: z.record(z.string(), z.string()).optional(),
  limits: ProviderLimits.optional(),
  mock: MockSettings.optional(),
  /** Files holding this provider's keys, in order of preference; several during a rotation. */
  keyFiles: z.array(filePath),
  keyRequired: z.boolean(),
});

export const CompiledModel = z.strictObject({
  name: z.string(),
  pin: z.string(),
  allowFloating: z.boolean(),
  maxInputTokens: z.int().positive().optional(),
  maxOutputTokens: z.int().positive().optional(),
  overMaxOutputTokens: z.enum(['clamp', 'reject']),
  timeouts: Timeouts,
  /** Every step names the model it sends: the step's own or the pin, never the client's alias. */
  fallback: z.array(FallbackStep.required()),
});

export const CompiledFlag = Flag.pick({ name: true, stickyBy: true, set: true }).extend({
  /** Share of traffic in the flag now: the fixed `percent`, or the rollout step the controller has reached. */
  percent: z.int().min(0).max(100),
});

export const CompiledClient = z.strictObject({
  name: z.string(),
  tokenFile: filePath,
  budget: Budget.optional(),
  limits: ProviderLimits.optional(),
});

export const GatewayConfig = z.strictObject({
  version: z.literal(GATEWAY_CONFIG_VERSION),
  route: z.strictObject({ name: z.string(), namespace: z.string().optional(), environment: z.string() }),
  listen: z.strictObject({ port: z.int().min(1).max(65535), metricsPort: z.int().min(1).max(65535) }),
  auth: z.enum(['tokens', 'none']),
  clients: z.array(CompiledClient),
  providers: z.array(CompiledProvider),
  models: z.array(CompiledModel),
  retry: Retry,
  circuitBreaker: CircuitBreaker,
  prices: z.record(z.string(), Price),
  budget: Budget.optional(),
  flags: z.array(CompiledFlag),
  redis: z.strictObject({ urlFile: filePath }).optional(),
  /**
   * How many gateway replicas share this environment's budgets and rate limits: what a replica's local share
   * divides them by while Redis is out of reach. Applied on reload, and left out of the pods' config hash
   * (`rolloutIdentity`), so scaling does not restart every pod.
   */
  replicas: z.int().min(1).max(100),
});

export type GatewayConfig = z.output<typeof GatewayConfig>;

/**
 * The part of a config whose change must restart the gateway's pods: all of it but `replicas`, which the gateways
 * read on reload. Scaling an environment then updates the ConfigMap without rolling every pod.
 */
export function rolloutIdentity(config: GatewayConfig): Omit<GatewayConfig, 'replicas'> {
  const { replicas: _replicas, ...identity } = config;
  return identity;
}
export type CompiledProvider = z.output<typeof CompiledProvider>;
export type CompiledModel = z.output<typeof CompiledModel>;
export type CompiledFlag = z.output<typeof CompiledFlag>;
