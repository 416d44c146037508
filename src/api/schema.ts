/**
 * The LLMRoute v1alpha1 API, defined once. Types, validation, defaults, the CRD's OpenAPI schema and the API
 * reference in docs/api.md are all derived from these zod schemas; cross-field rules live in rules.ts.
 *
 * Every list and string has an upper bound: the API server refuses CEL rules whose estimated cost is unbounded,
 * and bounded input is what a gateway config should be anyway.
 */
import { z } from 'zod';
import { API_VERSION, KIND } from './group.js';
import {
  DNS1035_LABEL,
  DNS1123_LABEL,
  DNS1123_SUBDOMAIN,
  DURATION,
  HTTP_URL,
  MODEL_NAME,
  QUANTITY,
  SECRET_KEY,
} from './patterns.js';

/** Upper bounds on list sizes; also what the CEL cost estimator multiplies. */
export const LIMITS = {
  providers: 16,
  models: 32,
  fallbackSteps: 8,
  environments: 16,
  keySourcesPerProvider: 4,
  clients: 128,
  flags: 16,
  rolloutSteps: 20,
  alertAt: 10,
  deployments: 32,
  labels: 32,
  allowFrom: 16,
  prices: 64,
} as const;

const label = (what: string) =>
  z
    .string()
    .min(1)
    .max(63)
    .regex(new RegExp(DNS1123_LABEL), { message: `${what} must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit` });

const subdomain = (what: string) =>
  z
    .string()
    .min(1)
    .max(253)
    .regex(new RegExp(DNS1123_SUBDOMAIN), { message: `${what} must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.'` });

const modelName = z
  .string()
  .min(1)
  .max(128)
  .regex(new RegExp(MODEL_NAME), { message: "model names may contain letters, digits and '-', '.', '_', ':', '/', '@'" });

const duration = (description: string) =>
  z
    .string()
    .max(32)
    .regex(new RegExp(DURATION), { message: 'must be a duration such as 30s, 15m, 1h or 1h30m' })
    .describe(description);

const httpURL = z.string().max(2048).regex(new RegExp(HTTP_URL), { message: 'must be an http:// or https:// URL' });

const usd = (description: string) => z.number().positive().max(1_000_000_000).describe(description);

const labelMap = z
  .record(z.string().min(1).max(317), z.string().max(63))
  .meta({ maxProperties: LIMITS.labels });

/** A key in a Kubernetes Secret in the LLMRoute's namespace. */
export const SecretKeyRef = z
  .strictObject({
    name: subdomain('a Secret name').describe('Name of the Secret, in the LLMRoute\'s namespace.'),
    key: z.string().min(1).max(253).regex(new RegExp(SECRET_KEY), { message: 'a Secret key may contain letters, digits, \'-\', \'_\' and \'.\'' }).describe('Key within the Secret\'s data.'),
  })
  .describe('A key of a Secret in the same namespace.');

// ---------------------------------------------------------------------------------------------------------------
// Providers

export const PROVIDER_TYPES = ['openai', 'azure-openai', 'anthropic', 'openai-compatible', 'mock'] as const;
export type ProviderType = (typeof PROVIDER_TYPES)[number];
/** Hosted providers always authenticate; self-hosted servers and the mock usually do not. */
export const PROVIDER_TYPES_NEEDING_KEYS: readonly ProviderType[] = ['openai', 'azure-openai', 'anthropic'];
/** Self-hosted weights do not move unless you move them, so their model names need no date. */
export const SELF_HOSTED_PROVIDER_TYPES: readonly ProviderType[] = ['openai-compatible', 'mock'];

export const FAILURE_KINDS = [
  'rate-limited',
  'quota-exhausted',
  'overloaded',
  'server-error',
  'timeout',
  'connection-reset',
  'stream-stall',
  'stream-cut',
  'auth-failed',
] as const;

export const ProviderLimits = z
  .strictObject({
    requestsPerMinute: z.int().positive().max(10_000_000).optional().describe('Requests per minute the gateway admits to this provider before the provider would throttle.'),
    tokensPerMinute: z.int().positive().max(1_000_000_000).optional().describe('Input plus output tokens per minute admitted to this provider.'),
  })
  .describe('Throttle before the provider does: requests are queued, not sent, once a limit is reached. With `gateway.redis` the replicas share the limit; without it each replica enforces all of it.');

export const MockSettings = z
  .strictObject({
    latencyMs: z.int().min(0).max(600_000).default(0).describe('Delay before the mock answers, in milliseconds.'),
    failureRatio: z.number().min(0).max(1).default(0).describe('Share of requests that fail.'),
    failureKind: z.enum(FAILURE_KINDS).default('server-error').describe('How failing requests fail: the error class the gateway should see.'),
  })
  .describe('Settings of the built-in fault-injecting provider, for local runs and failover drills.');

export const Provider = z
  .strictObject({
    name: label('a provider name').describe('Name that fallback steps and environment keys refer to.'),
    type: z.enum(PROVIDER_TYPES).describe('Wire protocol: `openai`, `azure-openai`, `anthropic`, `openai-compatible` (vLLM, Ollama, llama.cpp) or `mock`.'),
    baseURL: httpURL
      .optional()
      .describe('Base URL. Required for `azure-openai` (the resource endpoint) and `openai-compatible`; defaults to the public API for `openai` and `anthropic`.'),
    apiVersion: z
      .string()
      .max(64)
      .regex(/^[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?$/, { message: 'must be an Azure OpenAI api-version such as 2024-10-21 or 2025-01-01-preview' })
      .optional()
      .describe('Azure OpenAI `api-version` query parameter. Required for `azure-openai`.'),
    deployments: z
      .record(modelName, z.string().min(1).max(64).regex(/^[A-Za-z0-9][-A-Za-z0-9_.]*$/, { message: 'must be an Azure deployment name' }))
      .meta({ maxProperties: LIMITS.deployments })
      .optional()
      .describe('Azure OpenAI: model snapshot → deployment name. Every model this provider may serve must have one.'),
    keyRequired: z
      .boolean()
      .optional()
      .describe('Whether every environment must provide a key. Defaults to true for `openai`, `azure-openai` and `anthropic`, false for `openai-compatible` and `mock`.'),
    limits: ProviderLimits.optional(),
    mock: MockSettings.optional(),
  })
  .describe('An upstream LLM provider.');

// ---------------------------------------------------------------------------------------------------------------
// Models

export const FallbackStep = z
  .strictObject({
    provider: label('a provider name').describe('Provider to try, by name.'),
    model: modelName.optional().describe('Model to ask this provider for. Defaults to the model\'s `pin`; the gateway never sends the client\'s alias.'),
  })
  .describe('One step of a fallback chain.');

export const Timeouts = z
  .strictObject({
    firstTokenSeconds: z.number().positive().max(3600).default(30).describe('Longest wait for the response to start (the first token when streaming). On expiry the gateway fails over.'),
    idleSeconds: z.number().positive().max(3600).default(20).describe('Longest gap between two stream chunks. A stall fails over if nothing was sent yet, else ends the stream with an explicit error.'),
    totalSeconds: z.number().positive().max(3600).default(120).describe('Longest time for one request, all attempts included.'),
  })
  .describe('Separate limits for time to first token, idle time between chunks and total time.');

/** The parts of a model a flag may override; shared with flags so the two cannot drift. */
const modelTunables = {
  pin: modelName.describe('Model snapshot sent to providers whose fallback step names no model, e.g. `gpt-4o-2024-08-06` or `claude-sonnet-4-20250514`. Must be dated unless every step that uses it is a self-hosted provider or `allowFloating` is set.'),
  maxInputTokens: z.int().positive().max(10_000_000).optional().describe('Requests whose prompt is longer are refused with 400 before any money is spent.'),
  maxOutputTokens: z.int().positive().max(10_000_000).optional().describe('Upper bound on `max_tokens`; it also bounds the worst-case cost that budgets reserve.'),
  fallback: z.array(FallbackStep).min(1).max(LIMITS.fallbackSteps).describe('Ordered providers to try; the first is the primary.'),
};

export const Model = z
  .strictObject({
    name: modelName.describe('The name clients send as `model`, e.g. `chat`.'),
    ...modelTunables,
    allowFloating: z.boolean().default(false).describe('Accept floating aliases (undated names) for this model: its `pin`, its fallback `model`s and flag overrides of them. Validation then warns instead of failing.'),
    overMaxOutputTokens: z.enum(['clamp', 'reject']).default('clamp').describe('A request whose `max_tokens` (or `max_completion_tokens`) exceeds `maxOutputTokens`: `clamp` lowers it to the cap, `reject` answers 400 saying by how much.'),
    timeouts: Timeouts.prefault({}),
  })
  .describe('A model as clients see it: a name mapped to a pinned snapshot and a fallback chain.');

// ---------------------------------------------------------------------------------------------------------------
// Resilience, prices, auth, clients

export const Retry = z
  .strictObject({
    maxAttempts: z.int().min(1).max(10).default(3).describe('Attempts per fallback step, the first included.'),
    baseDelayMs: z.int().min(0).max(60_000).default(250).describe('Base of the exponential backoff (full jitter).'),
    maxDelayMs: z.int().min(0).max(600_000).default(8000).describe('Upper bound of one backoff delay; a longer `Retry-After` fails over instead of waiting.'),
    budgetPercent: z.number().min(0).max(100).default(20).describe('Retries allowed as a percentage of requests, so an outage cannot multiply traffic.'),
  })
  .describe('Retries of the same provider before falling back.');

export const CircuitBreaker = z
  .strictObject({
    failureRatio: z.number().gt(0).max(1).default(0.5).describe('Failure ratio over the window that opens the breaker.'),
    minRequests: z.int().min(1).max(100_000).default(10).describe('Fewest requests in the window before the ratio counts.'),
    windowSeconds: z.int().min(1).max(3600).default(30).describe('Length of the sliding window.'),
    openSeconds: z.int().min(1).max(3600).default(30).describe('How long the breaker stays open before half-open probes.'),
  })
  .describe('A breaker per provider and model: closed, open, half-open.');

export const Price = z
  .strictObject({
    input: z.number().min(0).max(100_000).describe('USD per million input tokens.'),
    output: z.number().min(0).max(100_000).describe('USD per million output tokens.'),
  })
  .describe('Price of a model snapshot.');

export const ON_EXHAUSTED = ['reject', 'degrade'] as const;

export const Budget = z
  .strictObject({
    daily: usd('USD per UTC day.').optional(),
    monthly: usd('USD per UTC calendar month.').optional(),
    alertAt: z
      .array(z.number().gt(0).max(1))
      .max(LIMITS.alertAt)
      .default([0.8])
      .describe('Fractions of a budget, each in (0, 1], at which an alert fires.'),
    onExhausted: z.enum(ON_EXHAUSTED).default('reject').describe('`reject` answers 429 `budget_exceeded`; `degrade` routes to `degradeTo`.'),
    degradeTo: modelName.optional().describe('With `onExhausted: degrade`: the cheaper model (a `spec.models[].name`) to serve instead.'),
  })
  .describe('A spending limit. Admission reserves the worst-case cost and settles to the actual cost.');

export const AUTH_MODES = ['tokens', 'none'] as const;

export const Client = z
  .strictObject({
    name: label('a client name').describe('Caller name; labels metrics, logs and budgets.'),
    tokenSecretRef: SecretKeyRef.describe('Secret key holding the bearer token this client presents.'),
    budget: Budget.optional(),
    limits: ProviderLimits.optional().describe('Requests and tokens per minute this client may send: across all replicas with `gateway.redis`, else per replica. Requests over the limit wait in a bounded queue, then get 429 with Retry-After.'),
  })
  .describe('A caller of the gateway.');

// ---------------------------------------------------------------------------------------------------------------
// Flags

export const STICKY_BY = ['user', 'client'] as const;

export const Analysis = z
  .strictObject({
    maxErrorRatio: z.number().min(0).max(1).optional().describe('Roll back when the flag\'s error ratio exceeds this.'),
    maxP99LatencySeconds: z.number().positive().max(3600).optional().describe('Roll back when the flag\'s p99 latency exceeds this.'),
    maxCostPerRequestUSD: z.number().positive().max(1000).optional().describe('Roll back when the flag\'s mean cost per request exceeds this.'),
    minRequests: z.int().min(1).max(1_000_000).default(50).describe('Fewest requests in a step before the analysis judges it.'),
  })
  .describe('Metric checks made before each step; a failed check rolls the flag back to 0%.');

export const Rollout = z
  .strictObject({
    steps: z.array(z.int().min(1).max(100)).min(1).max(LIMITS.rolloutSteps).describe('Ascending percentages, ending at 100.'),
    interval: duration('Time spent at each step before analysis and the next step.'),
    analysis: Analysis.prefault({}),
  })
  .describe('Automated stepping of a flag\'s percentage by the controller.');

export const FlagOverrides = z
  .strictObject({
    models: z
      .record(modelName, z.strictObject(modelTunables).partial().describe('Fields of the model to override; unset fields keep the model\'s values.'))
      .meta({ maxProperties: LIMITS.models })
      .optional()
      .describe('Per model name: the fields to override for requests in the flag.'),
  })
  .describe('Parts of the spec a flag overrides.');

export const Flag = z
  .strictObject({
    name: label('a flag name').describe('Flag name; labels metrics as the variant.'),
    stickyBy: z.enum(STICKY_BY).default('user').describe('What keeps a caller in the same bucket: the OpenAI `user` field (or `X-LLMRoute-User` header), or the authenticated client.'),
    percent: z.int().min(0).max(100).optional().describe('Fixed share of traffic in the flag. With a `rollout`, the controller sets the share and this is ignored.'),
    environments: z.array(label('an environment name')).max(LIMITS.environments).optional().describe('Environments the flag applies in. Defaults to all.'),
    set: FlagOverrides,
    rollout: Rollout.optional(),
  })
  .describe('A sticky percentage split that overrides parts of the spec.');

// ---------------------------------------------------------------------------------------------------------------
// Alerts and network

export const Alerts = z
  .strictObject({
    labels: labelMap.optional().describe('Extra labels on the PrometheusRule (e.g. what your Prometheus rule selector matches).'),
    errorRatio: z.number().gt(0).max(1).default(0.05).describe('The error budget: the share of requests allowed to fail (1 − the SLO). Pages when errors burn it 14.4× too fast over 1h and 5m, or 6× over 6h and 30m (a multi-window burn rate).'),
    p99LatencySeconds: z.number().positive().max(3600).default(30).describe('p99 request duration that warns.'),
    p99TimeToFirstTokenSeconds: z.number().positive().max(3600).default(10).describe('p99 time to first token that warns.'),
    fallbackRatio: z.number().gt(0).max(1).default(0.1).describe('Share of requests served by a fallback that warns: the primary is quietly failing.'),
    rateLimitedRatio: z.number().gt(0).max(1).default(0.1).describe('Share of a provider\'s attempts answered with a rate limit (429 `rate_limited`), sustained for 15 minutes, that warns.'),
    streamStallRatio: z.number().gt(0).max(1).default(0.05).describe('Share of attempts at a provider and model that stall mid-stream (`stream_stall`), sustained for 10 minutes, that warns.'),
    streamTruncatedRatio: z.number().gt(0).max(1).default(0.01).describe('Share of client streams that end truncated (with an error event instead of `[DONE]`), sustained for 10 minutes, that warns.'),
    runbookURL: httpURL
      .default('https://github.com/llmroute/llmroute/blob/main/docs/runbooks.md')
      .describe('Runbook every alert links to, with the alert\'s anchor appended; point it at your own copy to add local steps.'),
  })
  .describe('Thresholds and labels for the rendered PrometheusRule.');

export const PeerSelector = z
  .strictObject({
    namespaceSelector: z.strictObject({ matchLabels: labelMap.describe('Labels a namespace must carry.') }).optional().describe('Namespaces whose pods may call the gateway.'),
    podSelector: z.strictObject({ matchLabels: labelMap.describe('Labels a pod must carry.') }).optional().describe('Pods that may call the gateway (in the route\'s namespace unless a namespaceSelector is set).'),
  })
  .describe('A NetworkPolicy peer.');

export const Network = z
  .strictObject({
    allowFrom: z.array(PeerSelector).max(LIMITS.allowFrom).optional().describe('Who may reach the API port. Defaults to every pod in the route\'s namespace.'),
    metricsNamespace: label('a namespace').default('monitoring').describe('Namespace allowed to scrape the metrics port.'),
  })
  .describe('Who may reach the gateway.');

// ---------------------------------------------------------------------------------------------------------------
// Environments

export const SECRET_STORE_KINDS = ['SecretStore', 'ClusterSecretStore'] as const;

export const ExternalSecretSource = z
  .strictObject({
    storeRef: z.strictObject({
      name: subdomain('a secret store name').describe('Name of the SecretStore or ClusterSecretStore.'),
      kind: z.enum(SECRET_STORE_KINDS).default('SecretStore').describe('`SecretStore` (namespaced) or `ClusterSecretStore`.'),
    }).describe('The External Secrets Operator store to read from.'),
    remoteRef: z.strictObject({
      key: z.string().min(1).max(1024).describe('Key (path) in the external store.'),
      property: z.string().min(1).max(256).optional().describe('Property within the remote value, for JSON values.'),
      version: z.string().min(1).max(256).optional().describe('Version of the remote value, where the store has versions.'),
    }).describe('The value to read from the store.'),
    refreshInterval: duration('How often External Secrets Operator re-reads the key; rotation reaches the gateway within this time.').default('1h'),
  })
  .describe('A key synced by External Secrets Operator into a Secret that llmroute names and mounts.');

export const KeySource = z
  .strictObject({
    externalSecret: ExternalSecretSource.optional(),
    secretRef: SecretKeyRef.optional().describe('An existing Secret key in the LLMRoute\'s namespace.'),
  })
  .describe('Where one provider key comes from: exactly one of `externalSecret` or `secretRef`.');

const quantity = (description: string) =>
  z.string().max(32).regex(new RegExp(QUANTITY), { message: 'must be a Kubernetes quantity such as 100m, 0.5, 128Mi or 1Gi' }).describe(description);

export const Resources = z
  .strictObject({
    requests: z.strictObject({
      cpu: quantity('CPU request.').default('100m'),
      memory: quantity('Memory request.').default('128Mi'),
    }).prefault({}).describe('Resources the scheduler reserves for each gateway pod.'),
    limits: z.strictObject({
      cpu: quantity('CPU limit. None by default: CPU throttling adds latency to every request.').optional(),
      memory: quantity('Memory limit.').default('256Mi'),
    }).prefault({}).describe('Upper bounds for each gateway pod.'),
  })
  .describe('Container resources of the gateway.');

export const Tracing = z
  .strictObject({
    endpoint: httpURL.describe('Base URL of the OpenTelemetry collector\'s OTLP/HTTP receiver, e.g. `http://otel-collector.observability:4318`; spans go to `<endpoint>/v1/traces` as OTLP/HTTP with JSON (`OTEL_EXPORTER_OTLP_ENDPOINT`).'),
    sampleRatio: z.number().min(0).max(1).default(1).describe('Share of the traces started at the gateway that are sampled (`parentbased_traceidratio`); a request with a `traceparent` follows its caller\'s decision.'),
    serviceName: z.string().min(1).max(255).optional().describe('`service.name` of the spans. Defaults to `<route>-<environment>`, the `job` label of the gateway\'s metrics.'),
    headersSecretRef: SecretKeyRef.optional().describe('Secret key holding the headers the collector wants (a hosted backend\'s API key), in the form of `OTEL_EXPORTER_OTLP_HEADERS`: `name=value` pairs separated by commas, values URL-encoded. The gateway gets it as an environment variable from the Secret, read at startup: a change needs a restart of the pods.'),
  })
  .describe('OpenTelemetry tracing of the gateway: a span per chat completion request and per upstream attempt, exported over OTLP/HTTP. Off without it.');

export const Gateway = z
  .strictObject({
    replicas: z.int().min(1).max(100).default(2).describe('Gateway pods. More than one needs `redis` when any budget is set, so replicas share one budget.'),
    resources: Resources.prefault({}),
    redis: z.strictObject({
      urlSecretRef: SecretKeyRef.describe('Secret key holding the Redis URL (`redis://` or `rediss://`).'),
    }).optional().describe('Shared state for budgets and rate limits across replicas.'),
    tracing: Tracing.optional(),
  })
  .describe('The gateway Deployment of an environment.');

export const Environment = z
  .strictObject({
    name: label('an environment name').describe('Environment name; objects are named `<route>-<environment>`.'),
    keys: z
      .record(label('a provider name'), z.array(KeySource).min(1).max(LIMITS.keySourcesPerProvider))
      .meta({ maxProperties: LIMITS.providers })
      .optional()
      .describe('Per provider name: ordered key sources. Several sources allow rotation with overlap; the first healthy key is used.'),
    budget: Budget.optional(),
    rotateEvery: duration('Ask External Secrets Operator to re-read every externalSecret key of this environment this often (its `force-sync` annotation), e.g. after a scheduled rotation in the store. The gateway reloads the mounted key without a restart.').optional(),
    gateway: Gateway.prefault({}),
  })
  .describe('One deployment of the route: its keys, budget and gateway.');

// ---------------------------------------------------------------------------------------------------------------
// Spec, status, the object

export const LLMRouteSpec = z
  .strictObject({
    providers: z.array(Provider).min(1).max(LIMITS.providers).describe('Upstream providers.'),
    models: z.array(Model).min(1).max(LIMITS.models).describe('Models clients may ask for.'),
    retry: Retry.prefault({}),
    circuitBreaker: CircuitBreaker.prefault({}),
    prices: z
      .record(modelName, Price)
      .meta({ maxProperties: LIMITS.prices })
      .optional()
      .describe('Per model snapshot: price overrides. A built-in table covers common OpenAI and Anthropic snapshots.'),
    auth: z.enum(AUTH_MODES).default('tokens').describe('`tokens`: callers present a client token. `none`: anyone who reaches the gateway may call it (local demos only).'),
    clients: z.array(Client).max(LIMITS.clients).optional().describe('Callers of the gateway.'),
    flags: z.array(Flag).max(LIMITS.flags).optional().describe('Feature flags with sticky percentage splits.'),
    alerts: Alerts.prefault({}),
    network: Network.prefault({}),
    environments: z.array(Environment).min(1).max(LIMITS.environments).describe('Where the route is deployed.'),
  })
  .describe('How an application talks to LLM providers.');

export const CONDITION_STATUSES = ['True', 'False', 'Unknown'] as const;

export const Condition = z.strictObject({
  type: z.string().min(1).max(316).describe('Condition type, e.g. `Ready`, `KeysResolved`.'),
  status: z.enum(CONDITION_STATUSES).describe('`True`, `False` or `Unknown`.'),
  observedGeneration: z.int().min(0).optional().describe('The `metadata.generation` the condition was computed from.'),
  lastTransitionTime: z.string().max(64).describe('RFC 3339 time of the last status change.'),
  reason: z.string().min(1).max(1024).regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/).describe('CamelCase reason.'),
  message: z.string().max(32768).describe('Human-readable detail.'),
}).describe('One aspect of the route\'s state, per Kubernetes API conventions.');

export const KeyStatus = z.strictObject({
  provider: label('a provider name').describe('Provider the key is for.'),
  source: z.int().min(0).describe('Index of the key source in `spec.environments[].keys.<provider>`.'),
  secretName: subdomain('a Secret name').optional().describe('Secret the key is read from.'),
  fingerprint: z.string().max(64).optional().describe('Short hash of the key, never the key.'),
  rotatedAt: z.string().max(64).optional().describe('When the fingerprint last changed.'),
  ready: z.boolean().describe('Whether the key exists and is non-empty.'),
  message: z.string().max(1024).optional().describe('Why the key is not ready.'),
}).describe('One provider key of an environment.');

/** Operator commands for a flag's rollout, given in the annotation `rollout.llmroute.dev/<flag>`. */
export const ROLLOUT_COMMANDS = ['pause', 'resume', 'promote', 'abort'] as const;

export const FlagStatus = z.strictObject({
  name: label('a flag name').describe('Flag name.'),
  percent: z.int().min(0).max(100).describe('Share of traffic in the flag now.'),
  step: z.int().min(0).optional().describe('Index of the current rollout step.'),
  state: z.enum(['Progressing', 'Paused', 'Succeeded', 'RolledBack']).optional().describe('Where the rollout stands.'),
  lastStepTime: z.string().max(64).optional().describe('When the percentage last changed.'),
  message: z.string().max(1024).optional().describe('Why the rollout is where it is, e.g. the failed analysis.'),
  specHash: z.string().max(16).optional().describe('Hash of the flag fields the rollout depends on (set, stickyBy, rollout); a change restarts the rollout from the first step.'),
  command: z.enum(ROLLOUT_COMMANDS).optional().describe('The `rollout.llmroute.dev/<flag>` annotation value seen at the last reconcile, so `promote` and `resume` act once.'),
}).describe('A flag\'s percentage and rollout in one environment.');

export const EnvironmentStatus = z.strictObject({
  name: label('an environment name').describe('Environment name.'),
  ready: z.boolean().describe('Whether the gateway has all its replicas ready with the current config.'),
  readyReplicas: z.int().min(0).optional().describe('Gateway pods ready.'),
  configHash: z.string().max(64).optional().describe('Hash of the compiled gateway config being served.'),
  keys: z.array(KeyStatus).max(LIMITS.providers * LIMITS.keySourcesPerProvider).optional().describe('Every provider key of the environment.'),
  flags: z.array(FlagStatus).max(LIMITS.flags).optional().describe('Every flag that applies in the environment.'),
  spend: z
    .strictObject({
      dailyUSD: z.number().min(0).optional().describe('Spent in the current UTC day.'),
      monthlyUSD: z.number().min(0).optional().describe('Spent in the current UTC month.'),
    })
    .optional()
    .describe('Spend against the environment budget.'),
}).describe('Observed state of one environment.');

export const LLMRouteStatus = z
  .strictObject({
    observedGeneration: z.int().min(0).optional().describe('The `metadata.generation` this status describes.'),
    conditions: z.array(Condition).max(32).optional().describe('`Ready` summarises; also `ConfigValid`, `KeysResolved`, `Available`, `Progressing`, `Degraded`, `BudgetExceeded`.'),
    environments: z.array(EnvironmentStatus).max(LIMITS.environments).optional().describe('Per environment: gateway, keys, flags and spend.'),
  })
  .describe('Observed state, written by the controller.');

export const ObjectMeta = z.looseObject({
  name: z
    .string()
    .min(1)
    .max(63)
    .regex(new RegExp(DNS1035_LABEL), { message: 'an LLMRoute name must be a DNS-1035 label (it names Services): lowercase letters, digits and \'-\', starting with a letter' })
    .describe('Route name; rendered objects are named `<route>-<environment>`.'),
  namespace: label('a namespace').optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export const LLMRoute = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(KIND),
  metadata: ObjectMeta,
  spec: LLMRouteSpec,
  status: LLMRouteStatus.optional(),
});

/** What users write. */
export type LLMRouteInput = z.input<typeof LLMRoute>;
/** What the rest of the code reads: every default applied. */
export type LLMRoute = z.output<typeof LLMRoute>;
export type LLMRouteSpec = z.output<typeof LLMRouteSpec>;
export type Provider = z.output<typeof Provider>;
export type Model = z.output<typeof Model>;
export type FallbackStep = z.output<typeof FallbackStep>;
export type Environment = z.output<typeof Environment>;
export type KeySource = z.output<typeof KeySource>;
export type ExternalSecretSourceT = z.output<typeof ExternalSecretSource>;
export type Budget = z.output<typeof Budget>;
export type Client = z.output<typeof Client>;
export type Flag = z.output<typeof Flag>;
export type LLMRouteStatus = z.output<typeof LLMRouteStatus>;
export type Condition = z.output<typeof Condition>;
