/**
 * Cross-field rules: what a schema of types and ranges cannot say. Each rule is a pure check over a defaulted
 * LLMRoute that returns findings with a precise path, and, where the API server can enforce it, the same rule in CEL
 * so that `kubectl apply` rejects the object with the same message. Keeping both forms of a rule side by side is
 * what keeps them in step; the CRD generator places each CEL rule at `at` in the schema.
 */
import { BASELINE_VARIANT } from './metric-names.js';
import { DATED_SNAPSHOT, DNS1035_LABEL } from './patterns.js';
import {
  PROVIDER_TYPES_NEEDING_KEYS,
  SELF_HOSTED_PROVIDER_TYPES,
  type Budget,
  type LLMRoute,
  type Model,
  type Provider,
} from './schema.js';

export type PathSegment = string | number;
export type Severity = 'error' | 'warning';

export interface Finding {
  path: PathSegment[];
  message: string;
  severity: Severity;
  /** The cross-field rule that produced it; absent for schema and syntax findings. */
  rule?: string;
}

/** A CEL rule and where it sits in the CRD schema: property names, `[]` for list items, `{}` for map values. */
export interface CelRule {
  at: string[];
  rule: string;
  message: string;
  /** Relative JSON path (from `at`) the API server reports the error under. */
  fieldPath?: string;
}

export interface CrossFieldRule {
  id: string;
  /** The sentence both forms of the rule end with: what is wrong and what to do. */
  message: string;
  check(route: LLMRoute): Finding[];
  cel?: Omit<CelRule, 'message'>[];
}

const datedSnapshot = new RegExp(DATED_SNAPSHOT);
const isDated = (model: string) => datedSnapshot.test(model);
const quoteList = (names: string[]) => names.map((n) => `"${n}"`).join(', ');
const celList = (values: readonly string[]) => `[${values.map((v) => `'${v}'`).join(', ')}]`;

/** Whether every environment must supply a key for this provider. */
export function needsKey(provider: Pick<Provider, 'type' | 'keyRequired'>): boolean {
  return provider.keyRequired ?? PROVIDER_TYPES_NEEDING_KEYS.includes(provider.type);
}

const CEL_FLOATING = '(has(m.allowFloating) && m.allowFloating)';
const CEL_SELF_HOSTED = `self.providers.exists(p, p.name == f.provider && p.type in ${celList(SELF_HOSTED_PROVIDER_TYPES)})`;
const CEL_NEEDS_KEY = `(has(p.keyRequired) ? p.keyRequired : p.type in ${celList(PROVIDER_TYPES_NEEDING_KEYS)})`;

/** Builds findings of one rule: `detail` says what was found, the rule's message what is wrong and what to do. */
function finding(rule: { id: string; message: string }, path: PathSegment[], detail?: string, severity: Severity = 'error'): Finding {
  return { path, severity, rule: rule.id, message: detail ? `${detail}: ${rule.message}` : rule.message };
}

/** Every (model, step) pair whose served model is `served`, flag overrides included, with the path of the name. */
interface ServedModel {
  provider: string;
  model: string;
  path: PathSegment[];
  floatingAllowed: boolean;
}

/**
 * The model each fallback step asks its provider for: the step's `model`, else the pin. Flags can override pins and
 * whole chains, so their variants count too; a flag's model served by Azure needs a deployment just the same.
 */
export function servedModels(route: LLMRoute): ServedModel[] {
  const served: ServedModel[] = [];
  route.spec.models.forEach((model, m) => {
    model.fallback.forEach((step, s) => {
      served.push({
        provider: step.provider,
        model: step.model ?? model.pin,
        path: step.model ? ['spec', 'models', m, 'fallback', s, 'model'] : ['spec', 'models', m, 'pin'],
        floatingAllowed: model.allowFloating,
      });
    });
  });
  (route.spec.flags ?? []).forEach((flag, f) => {
    for (const [name, override] of Object.entries(flag.set.models ?? {})) {
      const base = route.spec.models.find((m) => m.name === name);
      if (!base) continue;
      const setPath: PathSegment[] = ['spec', 'flags', f, 'set', 'models', name];
      const basePath: PathSegment[] = ['spec', 'models', route.spec.models.indexOf(base)];
      const pinPath = override.pin !== undefined ? [...setPath, 'pin'] : [...basePath, 'pin'];
      const chainPath = override.fallback ? [...setPath, 'fallback'] : [...basePath, 'fallback'];
      (override.fallback ?? base.fallback).forEach((step, s) => {
        served.push({
          provider: step.provider,
          model: step.model ?? override.pin ?? base.pin,
          path: step.model ? [...chainPath, s, 'model'] : pinPath,
          floatingAllowed: base.allowFloating,
        });
      });
    }
  });
  return served;
}

function uniqueNames(list: 'providers' | 'models' | 'clients' | 'flags' | 'environments'): CrossFieldRule {
  return {
    id: `unique-${list}`,
    message: `names in spec.${list} must be unique; rename or remove the duplicate`,
    check(route) {
      const seen = new Set<string>();
      const findings: Finding[] = [];
      (route.spec[list] ?? []).forEach((item, i) => {
        if (seen.has(item.name)) findings.push(finding(this, ['spec', list, i, 'name'], `"${item.name}" is used twice`));
        seen.add(item.name);
      });
      return findings;
    },
    cel: [{ at: ['spec', list], rule: 'self.all(x, self.exists_one(y, y.name == x.name))' }],
  };
}

function budgetsOf(route: LLMRoute): { budget: Budget; path: PathSegment[] }[] {
  return [
    ...route.spec.environments.flatMap((e, i) => (e.budget ? [{ budget: e.budget, path: ['spec', 'environments', i, 'budget'] }] : [])),
    ...(route.spec.clients ?? []).flatMap((c, i) => (c.budget ? [{ budget: c.budget, path: ['spec', 'clients', i, 'budget'] }] : [])),
  ];
}

const modelByName = (route: LLMRoute, name: string): Model | undefined => route.spec.models.find((m) => m.name === name);

export const RULES: CrossFieldRule[] = [
  {
    id: 'route-name',
    message: 'an LLMRoute name plus "-" plus an environment name must fit a 63-character DNS-1035 label (it names the Service); shorten the route or environment name',
    check(route) {
      return route.spec.environments.flatMap((env, i) => {
        const name = `${route.metadata.name}-${env.name}`;
        return name.length > 63 ? [finding(this, ['spec', 'environments', i, 'name'], `"${name}" is ${name.length} characters`)] : [];
      });
    },
    cel: [{ at: [], rule: `self.spec.environments.all(e, size(self.metadata.name) + size(e.name) < 63) && self.metadata.name.matches('${DNS1035_LABEL}')`, fieldPath: '.spec.environments' }],
  },
  uniqueNames('providers'),
  uniqueNames('models'),
  uniqueNames('clients'),
  uniqueNames('flags'),
  uniqueNames('environments'),
  {
    id: 'base-url',
    message: 'providers of type azure-openai and openai-compatible need a baseURL; set it to the resource endpoint or server URL',
    check(route) {
      return route.spec.providers.flatMap((p, i) =>
        (p.type === 'azure-openai' || p.type === 'openai-compatible') && !p.baseURL ? [finding(this, ['spec', 'providers', i, 'baseURL'], `provider "${p.name}" has none`)] : [],
      );
    },
    cel: [{ at: ['spec', 'providers', '[]'], rule: "!(self.type in ['azure-openai', 'openai-compatible']) || has(self.baseURL)", fieldPath: '.baseURL' }],
  },
  {
    id: 'azure-api-version',
    message: 'an azure-openai provider needs an apiVersion, such as "2024-10-21"; Azure rejects requests without one',
    check(route) {
      return route.spec.providers.flatMap((p, i) =>
        p.type === 'azure-openai' && !p.apiVersion ? [finding(this, ['spec', 'providers', i, 'apiVersion'], `provider "${p.name}" has none`)] : [],
      );
    },
    cel: [{ at: ['spec', 'providers', '[]'], rule: "self.type != 'azure-openai' || has(self.apiVersion)", fieldPath: '.apiVersion' }],
  },
  {
    id: 'fallback-provider-declared',
    message: 'every fallback provider must be declared in spec.providers; add it there or fix the name',
    check(route) {
      const declared = route.spec.providers.map((p) => p.name);
      const findings: Finding[] = [];
      route.spec.models.forEach((model, m) =>
        model.fallback.forEach((step, s) => {
          if (!declared.includes(step.provider)) {
            findings.push(finding(this, ['spec', 'models', m, 'fallback', s, 'provider'], `"${step.provider}" is not one of ${quoteList(declared)}`));
          }
        }),
      );
      (route.spec.flags ?? []).forEach((flag, f) =>
        Object.entries(flag.set.models ?? {}).forEach(([name, override]) =>
          (override.fallback ?? []).forEach((step, s) => {
            if (!declared.includes(step.provider)) {
              findings.push(finding(this, ['spec', 'flags', f, 'set', 'models', name, 'fallback', s, 'provider'], `"${step.provider}" is not one of ${quoteList(declared)}`));
            }
          }),
        ),
      );
      return findings;
    },
    cel: [
      { at: ['spec'], rule: 'self.models.all(m, m.fallback.all(f, self.providers.exists(p, p.name == f.provider)))', fieldPath: '.models' },
      {
        at: ['spec'],
        rule: '!has(self.flags) || self.flags.all(fl, !has(fl.set.models) || fl.set.models.all(k, !has(fl.set.models[k].fallback) || fl.set.models[k].fallback.all(f, self.providers.exists(p, p.name == f.provider))))',
        fieldPath: '.flags',
      },
    ],
  },
  {
    id: 'pin-dated',
    message: 'a pin must be a dated snapshot such as "gpt-4o-2024-08-06" or "claude-sonnet-4-20250514", because a floating alias can change behaviour without a deploy; pin a snapshot, or set allowFloating: true on the model to accept the risk',
    check(route) {
      return uniqueByPath(servedModels(route).filter((s) => !isDated(s.model) && !isSelfHosted(route, s.provider))).map((s) => finding(this, s.path, `"${s.model}" is a floating alias`, s.floatingAllowed ? 'warning' : 'error'));
    },
    // The API server's cost estimator prices a string of an outer loop variable used in an inner loop as if it
    // were megabytes long, so each rule keeps the string it tests in the innermost loop it appears in.
    cel: [
      {
        at: ['spec'],
        rule: `self.models.all(m, ${CEL_FLOATING} || ((m.pin.matches('${DATED_SNAPSHOT}') || m.fallback.all(f, has(f.model) || ${CEL_SELF_HOSTED})) && m.fallback.all(f, !has(f.model) || f.model.matches('${DATED_SNAPSHOT}') || ${CEL_SELF_HOSTED})))`,
        fieldPath: '.models',
      },
      {
        at: ['spec'],
        rule: `!has(self.flags) || self.flags.all(fl, !has(fl.set.models) || self.models.all(m, ${CEL_FLOATING} || !(m.name in fl.set.models) || !has(fl.set.models[m.name].fallback) || fl.set.models[m.name].fallback.all(f, !has(f.model) || f.model.matches('${DATED_SNAPSHOT}') || ${CEL_SELF_HOSTED})))`,
        fieldPath: '.flags',
      },
      {
        at: ['spec'],
        // CEL has no common type for the flag's chain and the model's, so the two cases are spelt out.
        rule: `!has(self.flags) || self.flags.all(fl, !has(fl.set.models) || self.models.all(m, ${CEL_FLOATING} || !(m.name in fl.set.models) || (has(fl.set.models[m.name].pin) ? fl.set.models[m.name].pin.matches('${DATED_SNAPSHOT}') : m.pin.matches('${DATED_SNAPSHOT}')) || (has(fl.set.models[m.name].fallback) ? fl.set.models[m.name].fallback.all(f, has(f.model) || ${CEL_SELF_HOSTED}) : m.fallback.all(f, has(f.model) || ${CEL_SELF_HOSTED}))))`,
        fieldPath: '.flags',
      },
    ],
  },
  {
    id: 'azure-deployment',
    message: 'every model an azure-openai provider may serve (pins, fallback models and flag overrides) needs an entry in its deployments map; add "<model>: <deployment name>"',
    check(route) {
      const azure = new Map(route.spec.providers.filter((p) => p.type === 'azure-openai').map((p) => [p.name, p]));
      const unmapped = servedModels(route).filter((s) => {
        const provider = azure.get(s.provider);
        return provider !== undefined && provider.deployments?.[s.model] === undefined;
      });
      return uniqueByPath(unmapped).map((s) => finding(this, s.path, `provider "${s.provider}" has no deployment for "${s.model}"`));
    },
    cel: [
      {
        at: ['spec'],
        rule: "self.models.all(m, m.fallback.all(f, !has(f.model) || !self.providers.exists(p, p.name == f.provider && p.type == 'azure-openai' && !(has(p.deployments) && f.model in p.deployments)))) && self.providers.all(p, p.type != 'azure-openai' || self.models.all(m, !m.fallback.exists(f, !has(f.model) && f.provider == p.name) || (has(p.deployments) && m.pin in p.deployments)))",
        fieldPath: '.models',
      },
      {
        at: ['spec'],
        rule: "!has(self.flags) || self.flags.all(fl, !has(fl.set.models) || self.models.all(m, !(m.name in fl.set.models) || !has(fl.set.models[m.name].fallback) || fl.set.models[m.name].fallback.all(f, !has(f.model) || !self.providers.exists(p, p.name == f.provider && p.type == 'azure-openai' && !(has(p.deployments) && f.model in p.deployments)))))",
        fieldPath: '.flags',
      },
      {
        at: ['spec'],
        rule: "!has(self.flags) || self.providers.all(p, p.type != 'azure-openai' || self.flags.all(fl, !has(fl.set.models) || self.models.all(m, !(m.name in fl.set.models) || !(has(fl.set.models[m.name].fallback) ? fl.set.models[m.name].fallback.exists(f, !has(f.model) && f.provider == p.name) : m.fallback.exists(f, !has(f.model) && f.provider == p.name)) || (has(p.deployments) && (has(fl.set.models[m.name].pin) ? fl.set.models[m.name].pin : m.pin) in p.deployments))))",
        fieldPath: '.flags',
      },
    ],
  },
  {
    id: 'keys-provider-declared',
    message: 'environment keys must be listed under the name of a provider in spec.providers; fix the name or declare the provider',
    check(route) {
      const declared = route.spec.providers.map((p) => p.name);
      return route.spec.environments.flatMap((env, e) =>
        Object.keys(env.keys ?? {})
          .filter((name) => !declared.includes(name))
          .map((name) => finding(this, ['spec', 'environments', e, 'keys', name], `"${name}" is not one of ${quoteList(declared)}`)),
      );
    },
    cel: [{ at: ['spec'], rule: 'self.environments.all(e, !has(e.keys) || e.keys.all(k, self.providers.exists(p, p.name == k)))', fieldPath: '.environments' }],
  },
  {
    id: 'keys-present',
    message: 'every environment needs a key source for every provider that requires a key, so a missing key is caught before deploy and not on the first call; add an externalSecret or secretRef under keys.<provider>, or set keyRequired: false on the provider',
    check(route) {
      return route.spec.environments.flatMap((env, e) =>
        route.spec.providers
          .filter((p) => needsKey(p) && !env.keys?.[p.name])
          .map((p) => finding(this, ['spec', 'environments', e, 'keys'], `environment "${env.name}" has no key for provider "${p.name}" (${p.type})`)),
      );
    },
    cel: [{ at: ['spec'], rule: `self.environments.all(e, self.providers.all(p, !${CEL_NEEDS_KEY} || (has(e.keys) && p.name in e.keys)))`, fieldPath: '.environments' }],
  },
  {
    id: 'key-source-one-of',
    message: 'a key source needs exactly one of externalSecret or secretRef',
    check(route) {
      return route.spec.environments.flatMap((env, e) =>
        Object.entries(env.keys ?? {}).flatMap(([provider, sources]) =>
          sources.flatMap((source, s) =>
            (source.externalSecret === undefined) === (source.secretRef === undefined)
              ? [finding(this, ['spec', 'environments', e, 'keys', provider, s], source.externalSecret ? 'both are set' : 'neither is set')]
              : [],
          ),
        ),
      );
    },
    cel: [{ at: ['spec', 'environments', '[]', 'keys', '{}', '[]'], rule: 'has(self.externalSecret) != has(self.secretRef)' }],
  },
  {
    id: 'timeouts-order',
    message: 'firstTokenSeconds and idleSeconds must not exceed totalSeconds; raise totalSeconds or lower the others',
    check(route) {
      return route.spec.models.flatMap((model, m) => {
        const t = model.timeouts;
        return t.firstTokenSeconds > t.totalSeconds || t.idleSeconds > t.totalSeconds
          ? [finding(this, ['spec', 'models', m, 'timeouts'], `first token ${t.firstTokenSeconds}s, idle ${t.idleSeconds}s, total ${t.totalSeconds}s`)]
          : [];
      });
    },
    cel: [{ at: ['spec', 'models', '[]', 'timeouts'], rule: '!has(self.totalSeconds) || ((!has(self.firstTokenSeconds) || self.firstTokenSeconds <= self.totalSeconds) && (!has(self.idleSeconds) || self.idleSeconds <= self.totalSeconds))' }],
  },
  {
    id: 'retry-delays',
    message: 'retry.baseDelayMs must not exceed retry.maxDelayMs',
    check(route) {
      const r = route.spec.retry;
      return r.baseDelayMs > r.maxDelayMs ? [finding(this, ['spec', 'retry', 'baseDelayMs'], `${r.baseDelayMs} > ${r.maxDelayMs}`)] : [];
    },
    cel: [{ at: ['spec', 'retry'], rule: '!has(self.baseDelayMs) || !has(self.maxDelayMs) || self.baseDelayMs <= self.maxDelayMs', fieldPath: '.baseDelayMs' }],
  },
  {
    id: 'budget-limit',
    message: 'a budget needs a daily or a monthly limit (or both)',
    check(route) {
      return budgetsOf(route)
        .filter(({ budget }) => budget.daily === undefined && budget.monthly === undefined)
        .map(({ path }) => finding(this, path));
    },
    cel: [
      { at: ['spec', 'environments', '[]', 'budget'], rule: 'has(self.daily) || has(self.monthly)' },
      { at: ['spec', 'clients', '[]', 'budget'], rule: 'has(self.daily) || has(self.monthly)' },
    ],
  },
  {
    id: 'budget-alert-at',
    message: 'alertAt thresholds must be distinct and in ascending order',
    check(route) {
      return budgetsOf(route)
        .filter(({ budget }) => budget.alertAt.some((v, i) => i > 0 && v <= (budget.alertAt[i - 1] as number)))
        .map(({ budget, path }) => finding(this, [...path, 'alertAt'], `[${budget.alertAt.join(', ')}]`));
    },
    cel: ['environments', 'clients'].map((list) => ({
      at: ['spec', list, '[]', 'budget'],
      rule: '!has(self.alertAt) || (self.alertAt.isSorted() && self.alertAt.all(a, self.alertAt.exists_one(b, b == a)))',
      fieldPath: '.alertAt',
    })),
  },
  {
    id: 'budget-degrade',
    message: 'onExhausted: degrade needs degradeTo naming a model in spec.models (a cheaper one)',
    check(route) {
      return budgetsOf(route)
        .filter(({ budget }) => budget.onExhausted === 'degrade' && (!budget.degradeTo || !modelByName(route, budget.degradeTo)))
        .map(({ budget, path }) => finding(this, [...path, 'degradeTo'], budget.degradeTo ? `"${budget.degradeTo}" is not a model of this route` : 'it is not set'));
    },
    cel: [
      {
        at: ['spec'],
        rule: "self.environments.all(e, !has(e.budget) || !has(e.budget.onExhausted) || e.budget.onExhausted != 'degrade' || (has(e.budget.degradeTo) && self.models.exists(m, m.name == e.budget.degradeTo)))",
        fieldPath: '.environments',
      },
      {
        at: ['spec'],
        rule: "!has(self.clients) || self.clients.all(c, !has(c.budget) || !has(c.budget.onExhausted) || c.budget.onExhausted != 'degrade' || (has(c.budget.degradeTo) && self.models.exists(m, m.name == c.budget.degradeTo)))",
        fieldPath: '.clients',
      },
    ],
  },
  {
    id: 'budget-shared-state',
    message: 'budgets with more than one gateway replica need gateway.redis, or each replica would enforce the whole budget on its own and overspend; configure redis or set replicas: 1',
    check(route) {
      const clientBudgets = (route.spec.clients ?? []).some((c) => c.budget);
      return route.spec.environments.flatMap((env, e) =>
        env.gateway.replicas > 1 && !env.gateway.redis && (env.budget || clientBudgets)
          ? [finding(this, ['spec', 'environments', e, 'gateway'], `environment "${env.name}" has ${env.gateway.replicas} replicas and no redis`)]
          : [],
      );
    },
    cel: [
      {
        at: ['spec'],
        rule: 'self.environments.all(e, !has(e.gateway) || !has(e.gateway.replicas) || e.gateway.replicas == 1 || has(e.gateway.redis) || (!has(e.budget) && (!has(self.clients) || !self.clients.exists(c, has(c.budget)))))',
        fieldPath: '.environments',
      },
    ],
  },
  {
    id: 'flag-models-declared',
    message: 'a flag can only override models declared in spec.models',
    check(route) {
      return (route.spec.flags ?? []).flatMap((flag, f) =>
        Object.keys(flag.set.models ?? {})
          .filter((name) => !modelByName(route, name))
          .map((name) => finding(this, ['spec', 'flags', f, 'set', 'models', name], `"${name}" is not a model of this route`)),
      );
    },
    cel: [{ at: ['spec'], rule: '!has(self.flags) || self.flags.all(fl, !has(fl.set.models) || fl.set.models.all(k, self.models.exists(m, m.name == k)))', fieldPath: '.flags' }],
  },
  {
    id: 'flag-environments-declared',
    message: 'a flag\'s environments must be declared in spec.environments',
    check(route) {
      const declared = route.spec.environments.map((e) => e.name);
      return (route.spec.flags ?? []).flatMap((flag, f) =>
        (flag.environments ?? []).flatMap((name, i) =>
          declared.includes(name) ? [] : [finding(this, ['spec', 'flags', f, 'environments', i], `"${name}" is not one of ${quoteList(declared)}`)],
        ),
      );
    },
    cel: [{ at: ['spec'], rule: '!has(self.flags) || self.flags.all(fl, !has(fl.environments) || fl.environments.all(n, self.environments.exists(e, e.name == n)))', fieldPath: '.flags' }],
  },
  {
    id: 'flag-name-reserved',
    message: `"${BASELINE_VARIANT}" names the traffic outside every flag in metrics and rollout analysis; choose another flag name`,
    check(route) {
      return (route.spec.flags ?? []).flatMap((flag, f) => (flag.name === BASELINE_VARIANT ? [finding(this, ['spec', 'flags', f, 'name'])] : []));
    },
    cel: [{ at: ['spec', 'flags', '[]'], rule: `self.name != '${BASELINE_VARIANT}'`, fieldPath: '.name' }],
  },
  {
    id: 'flag-sticky-client',
    message: 'stickyBy: client needs auth: tokens, because with auth: none every caller is anonymous; use stickyBy: user',
    check(route) {
      if (route.spec.auth !== 'none') return [];
      return (route.spec.flags ?? []).flatMap((flag, f) => (flag.stickyBy === 'client' ? [finding(this, ['spec', 'flags', f, 'stickyBy'])] : []));
    },
    cel: [{ at: ['spec'], rule: "!has(self.auth) || self.auth != 'none' || !has(self.flags) || self.flags.all(fl, !has(fl.stickyBy) || fl.stickyBy != 'client')", fieldPath: '.flags' }],
  },
  {
    id: 'rollout-steps',
    message: 'rollout steps must ascend strictly and end at 100',
    check(route) {
      return (route.spec.flags ?? []).flatMap((flag, f) => {
        const steps = flag.rollout?.steps;
        if (!steps) return [];
        const ascending = steps.every((v, i) => i === 0 || v > (steps[i - 1] as number));
        return ascending && steps.at(-1) === 100 ? [] : [finding(this, ['spec', 'flags', f, 'rollout', 'steps'], `[${steps.join(', ')}]`)];
      });
    },
    cel: [
      {
        at: ['spec', 'flags', '[]', 'rollout'],
        rule: 'self.steps[size(self.steps) - 1] == 100 && self.steps.isSorted() && self.steps.all(s, self.steps.exists_one(t, t == s))',
        fieldPath: '.steps',
      },
    ],
  },
  // Warnings: legal, but probably not what was meant.
  {
    id: 'auth-none-with-clients',
    message: 'auth is none, so client tokens are not checked and client budgets do not apply; set auth: tokens or remove the clients',
    check(route) {
      return route.spec.auth === 'none' && route.spec.clients?.length ? [finding(this, ['spec', 'auth'], undefined, 'warning')] : [];
    },
  },
  {
    id: 'auth-tokens-without-clients',
    message: 'auth is tokens (the default) but no clients are declared, so the gateway will refuse every caller; add spec.clients, or set auth: none for a local demo',
    check(route) {
      return route.spec.auth === 'tokens' && !route.spec.clients?.length ? [finding(this, ['spec', 'clients'], undefined, 'warning')] : [];
    },
  },
  {
    id: 'flag-inert',
    message: 'the flag has no percent and no rollout, so it applies to no traffic; set percent or add a rollout',
    check(route) {
      return (route.spec.flags ?? []).flatMap((flag, f) =>
        flag.percent === undefined && !flag.rollout ? [finding(this, ['spec', 'flags', f], `flag "${flag.name}"`, 'warning')] : [],
      );
    },
  },
];

/** Flag variants re-serve their base model's steps; report each offending place once. */
function uniqueByPath<T extends { path: PathSegment[] }>(items: T[]): T[] {
  const seen = new Set<string>();
  return items.filter((item) => {
    const key = JSON.stringify(item.path);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function isSelfHosted(route: LLMRoute, providerName: string): boolean {
  const provider = route.spec.providers.find((p) => p.name === providerName);
  return provider !== undefined && SELF_HOSTED_PROVIDER_TYPES.includes(provider.type);
}

/** Every CEL rule with its message, ready for the CRD generator. */
export function celRules(): CelRule[] {
  return RULES.flatMap((rule) => (rule.cel ?? []).map((cel) => ({ ...cel, message: rule.message })));
}

/** Runs every rule; the order of findings follows the order of RULES, then the document. */
export function checkRules(route: LLMRoute): Finding[] {
  return RULES.flatMap((rule) => rule.check(route));
}
