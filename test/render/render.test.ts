import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configHash } from '../../src/api/canonical-json.js';
import { rolloutIdentity } from '../../src/api/gateway-config.js';
import { loadRoutes } from '../../src/api/files.js';
import { SECRETS_ROOT } from '../../src/api/mounts.js';
import type { LLMRoute } from '../../src/api/schema.js';
import { renderEnvironment, type KubernetesObject } from '../../src/render/render.js';
import { synthRoutes } from '../../src/render/synth.js';
import { toYaml } from '../../src/render/yaml.js';

const GOLDEN = 'test/render/golden';
const UPDATE = process.env.UPDATE_GOLDEN === '1';

async function route(file: string, name?: string): Promise<LLMRoute> {
  const { routes, findings } = await loadRoutes([file]);
  expect(findings.filter((f) => f.severity === 'error')).toEqual([]);
  return routes.find((r) => !name || r.route.metadata.name === name)!.route;
}

const CASES: [file: string, environment: string, covers: string][] = [
  ['examples/quickstart.yaml', 'dev', 'mock providers, no keys, auth none, default two replicas, no namespace'],
  ['examples/support-bot.yaml', 'staging', 'one replica, secretRef and externalSecret keys, custom alert labels'],
  ['examples/support-bot.yaml', 'production', 'three replicas, Redis, two key sources for one provider, PDB and spread'],
  ['test/render/routes/variants.yaml', 'single', 'one replica with Redis, mixed key sources, network peers, resources, tracing with headers from a Secret'],
];

type EnvVar = { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } };
/** The container variables that may hold a value in the manifest: none of them is a secret. */
const PLAIN_ENV = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_TRACES_SAMPLER', 'OTEL_TRACES_SAMPLER_ARG', 'OTEL_SERVICE_NAME'];

const byKind = (objects: KubernetesObject[], kind: string) => objects.filter((o) => o.kind === kind);
const deploymentOf = (objects: KubernetesObject[]) => byKind(objects, 'Deployment')[0] as KubernetesObject & { spec: { template: { metadata: { annotations: Record<string, string> }; spec: PodSpec } } };
type PodSpec = {
  securityContext: Record<string, unknown>;
  containers: { env?: EnvVar[]; resources: { requests: Record<string, string>; limits: Record<string, string> }; securityContext: Record<string, unknown>; volumeMounts: { name: string; mountPath: string; subPath?: string }[] }[];
  volumes: { name: string; secret?: { secretName: string } }[];
  terminationGracePeriodSeconds: number;
  topologySpreadConstraints?: unknown[];
};

describe('golden manifests', () => {
  it.each(CASES)('%s environment %s (%s)', async (file, environment) => {
    const rendered = toYaml(renderEnvironment({ route: await route(file), environment }).objects);
    const golden = join(GOLDEN, `${(await route(file)).metadata.name}-${environment}.yaml`);
    if (UPDATE) await writeFile(golden, rendered);
    expect(rendered).toBe(await readFile(golden, 'utf8'));
  });

  it('has no golden file without a case (stale goldens are deleted, not kept)', async () => {
    const expected = await Promise.all(CASES.map(async ([file, env]) => `${(await route(file)).metadata.name}-${env}.yaml`));
    expect((await readdir(GOLDEN)).sort()).toEqual(expected.sort());
  });
});

describe('render invariants', () => {
  it.each(CASES)('%s/%s: no Secret objects, no key material in ConfigMaps, annotations or env', async (file, environment) => {
    const r = await route(file);
    const { objects, configJson } = renderEnvironment({ route: r, environment });
    expect(byKind(objects, 'Secret')).toEqual([]);
    const config = JSON.parse(configJson);
    for (const provider of config.providers) for (const keyFile of provider.keyFiles) expect(keyFile.startsWith(`${SECRETS_ROOT}/keys/`)).toBe(true);
    for (const client of config.clients) expect(client.tokenFile.startsWith(`${SECRETS_ROOT}/clients/`)).toBe(true);
    // Nothing secret-shaped anywhere in the config: the only references to secrets are file paths.
    JSON.stringify(config, (key, value) => {
      // `overMaxOutputTokens` is a policy (clamp or reject) whose name happens to contain "token".
      if (/key|token|password|secret/i.test(key) && !/Files?$/.test(key) && key !== 'overMaxOutputTokens' && typeof value === 'string') throw new Error(`config field ${key} holds a string`);
      return value;
    });
    for (const object of objects) {
      for (const value of Object.values(object.metadata.annotations ?? {})) expect(value).toMatch(/^[0-9a-f]{16}$/);
    }
    // Environment variables: the tracing settings as values, anything else (the collector's headers) from a Secret.
    for (const container of deploymentOf(objects).spec.template.spec.containers) {
      for (const variable of container.env ?? []) {
        if (variable.value !== undefined) expect(PLAIN_ENV).toContain(variable.name);
        else expect(variable.valueFrom?.secretKeyRef).toEqual({ name: expect.any(String), key: expect.any(String) });
      }
    }
  });

  it.each(CASES)('%s/%s: every Secret the pod reads, mounted or as a variable, comes from an ExternalSecret or a secretRef of the route', async (file, environment) => {
    const r = await route(file);
    const { objects } = renderEnvironment({ route: r, environment });
    const env = r.spec.environments.find((e) => e.name === environment)!;
    const external = byKind(objects, 'ExternalSecret').map((o) => (o.spec as { target: { name: string } }).target.name);
    const referenced = [
      ...Object.values(env.keys ?? {}).flat().flatMap((s) => (s.secretRef ? [s.secretRef.name] : [])),
      ...(r.spec.clients ?? []).map((c) => c.tokenSecretRef.name),
      ...(env.gateway.redis ? [env.gateway.redis.urlSecretRef.name] : []),
      ...(env.gateway.tracing?.headersSecretRef ? [env.gateway.tracing.headersSecretRef.name] : []),
    ];
    const pod = deploymentOf(objects).spec.template.spec;
    const mounted = pod.volumes.flatMap((v) => (v.secret ? [v.secret.secretName] : []));
    const variables = pod.containers.flatMap((c) => (c.env ?? []).flatMap((v) => (v.valueFrom?.secretKeyRef ? [v.valueFrom.secretKeyRef.name] : [])));
    for (const name of [...mounted, ...variables]) expect([...external, ...referenced]).toContain(name);
    for (const name of external) expect(mounted).toContain(name);
    // Directory mounts only: the kubelet never refreshes a subPath mount, and rotation must reach running pods.
    for (const mount of pod.containers[0]!.volumeMounts) expect(mount.subPath).toBeUndefined();
  });

  it.each(CASES)('%s/%s: restricted security context and explicit resources', async (file, environment) => {
    const r = await route(file);
    const pod = deploymentOf(renderEnvironment({ route: r, environment }).objects).spec.template.spec;
    const env = r.spec.environments.find((e) => e.name === environment)!;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    const container = pod.containers[0]!;
    expect(container.securityContext).toMatchObject({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container.resources.requests).toEqual(env.gateway.resources.requests);
    expect(container.resources.limits).toEqual(env.gateway.resources.limits);
    expect(container.volumeMounts).toContainEqual(expect.objectContaining({ mountPath: '/tmp' }));
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(Math.max(...r.spec.models.map((m) => m.timeouts.totalSeconds)));
    expect(Boolean(pod.topologySpreadConstraints)).toBe(env.gateway.replicas > 1);
    expect(byKind(renderEnvironment({ route: r, environment }).objects, 'PodDisruptionBudget')).toHaveLength(env.gateway.replicas > 1 ? 1 : 0);
  });

  it('sets the OpenTelemetry variables only in an environment with gateway.tracing, the headers from their Secret', async () => {
    const envOf = async (file: string, environment: string) => deploymentOf(renderEnvironment({ route: await route(file), environment }).objects).spec.template.spec.containers[0]!.env;
    expect(await envOf('examples/quickstart.yaml', 'dev')).toBeUndefined();
    expect(await envOf('examples/support-bot.yaml', 'staging')).toBeUndefined();
    expect(await envOf('examples/support-bot.yaml', 'production')).toEqual([
      { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: 'http://otel-collector.observability:4318' },
      { name: 'OTEL_TRACES_SAMPLER', value: 'parentbased_traceidratio' },
      { name: 'OTEL_TRACES_SAMPLER_ARG', value: '0.1' },
      { name: 'OTEL_SERVICE_NAME', value: 'support-bot-production' },
    ]);
    expect(await envOf('test/render/routes/variants.yaml', 'single')).toEqual([
      { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: 'https://otlp.example.com/otlp' },
      { name: 'OTEL_TRACES_SAMPLER', value: 'parentbased_traceidratio' },
      { name: 'OTEL_TRACES_SAMPLER_ARG', value: '1' },
      { name: 'OTEL_SERVICE_NAME', value: 'llm-gateway' },
      { name: 'OTEL_EXPORTER_OTLP_HEADERS', valueFrom: { secretKeyRef: { name: 'otlp-backend', key: 'headers' } } },
    ]);
  });

  it('the config hash is the hash of the mounted config but its replica count, and is on the pod template', async () => {
    const { objects, configHash: hash } = renderEnvironment({ route: await route('examples/support-bot.yaml'), environment: 'production' });
    const data = (byKind(objects, 'ConfigMap')[0] as unknown as { data: Record<string, string> }).data['gateway.json']!;
    expect(JSON.parse(data)).toMatchObject({ replicas: 3 });
    expect(configHash(rolloutIdentity(JSON.parse(data)))).toBe(hash);
    expect(deploymentOf(objects).spec.template.metadata.annotations['llmroute.dev/config-hash']).toBe(hash);
  });

  it('the config hash changes when, and only when, the compiled config changes', async () => {
    const base = await route('examples/support-bot.yaml');
    const hash = (r: LLMRoute, percents?: Record<string, number>) => renderEnvironment({ route: r, environment: 'production', ...(percents ? { flagPercents: percents } : {}) }).configHash;
    const edit = (change: (r: LLMRoute) => void) => {
      const copy = structuredClone(base);
      change(copy);
      return copy;
    };
    const original = hash(base);
    // Not part of the gateway's config, or (replicas) applied by the gateways on reload: the pods must not roll.
    expect(hash(edit((r) => (r.spec.alerts.labels = { other: 'x' })))).toBe(original);
    expect(hash(edit((r) => (r.spec.environments[1]!.gateway.replicas = 5)))).toBe(original);
    expect(hash(edit((r) => (r.spec.environments[0]!.budget!.daily = 999)))).toBe(original);
    expect(hash(edit((r) => (r.spec.network.metricsNamespace = 'observability')))).toBe(original);
    // Part of it: they must.
    expect(hash(edit((r) => (r.spec.models[0]!.pin = 'gpt-4o-2024-11-20')))).not.toBe(original);
    expect(hash(edit((r) => (r.spec.environments[1]!.budget!.daily = 999)))).not.toBe(original);
    expect(hash(edit((r) => (r.spec.retry.maxAttempts = 2)))).not.toBe(original);
    expect(hash(base, { 'chat-nov-snapshot': 25 })).not.toBe(original);
    // Key order in the input does not matter.
    expect(hash(edit((r) => (r.spec.retry = { budgetPercent: 20, maxDelayMs: 8000, baseDelayMs: 250, maxAttempts: 3 })))).toBe(original);
  });

  it('renders byte-identical YAML for the same input', async () => {
    const r = await route('examples/support-bot.yaml');
    expect(toYaml(renderEnvironment({ route: r, environment: 'production' }).objects)).toBe(toYaml(renderEnvironment({ route: structuredClone(r), environment: 'production' }).objects));
  });

  it('sets an owner reference on every object when rendered for the controller', async () => {
    const owner = { apiVersion: 'llmroute.dev/v1alpha1', kind: 'LLMRoute', name: 'support-bot', uid: '6a1c1b4e-0000-4000-8000-000000000001' };
    const { objects } = renderEnvironment({ route: await route('examples/support-bot.yaml'), environment: 'staging', owner });
    for (const object of objects) expect((object.metadata as { ownerReferences?: unknown }).ownerReferences).toEqual([{ ...owner, controller: true, blockOwnerDeletion: true }]);
  });

  it('uses the namespace given over the route\'s, and the image given', async () => {
    const { objects } = renderEnvironment({ route: await route('examples/support-bot.yaml'), environment: 'staging', namespace: 'other', image: 'registry.example/llmroute:dev' });
    for (const object of objects) expect(object.metadata.namespace).toBe('other');
    expect(JSON.stringify(deploymentOf(objects))).toContain('"image":"registry.example/llmroute:dev"');
  });
});

describe('synth', () => {
  it('writes one file per route environment, identical to the goldens', async () => {
    const outdir = await mkdtemp(join(tmpdir(), 'llmroute-synth-'));
    const result = await synthRoutes(['examples', 'test/render/routes'], outdir);
    expect(result.ok).toBe(true);
    expect((await readdir(outdir)).sort()).toEqual(['quickstart-dev.k8s.yaml', 'support-bot-production.k8s.yaml', 'support-bot-staging.k8s.yaml', 'variants-single.k8s.yaml']);
    for (const [file, environment] of CASES) {
      const name = `${(await route(file)).metadata.name}-${environment}`;
      expect(await readFile(join(outdir, `${name}.k8s.yaml`), 'utf8')).toBe(await readFile(join(GOLDEN, `${name}.yaml`), 'utf8'));
    }
  });

  it('`npx cdk8s synth` itself writes the goldens, offline, from LLMROUTE_ROUTES into --output', async () => {
    const outdir = await mkdtemp(join(tmpdir(), 'llmroute-cdk8s-'));
    await promisify(execFile)('npx', ['--no-install', 'cdk8s', 'synth', '--output', outdir, '--check-upgrade', 'false'], {
      env: { ...process.env, LLMROUTE_ROUTES: 'examples', NODE_OPTIONS: '' },
      timeout: 60_000,
    });
    expect((await readdir(outdir)).sort()).toEqual(['quickstart-dev.k8s.yaml', 'support-bot-production.k8s.yaml', 'support-bot-staging.k8s.yaml']);
    for (const name of ['quickstart-dev', 'support-bot-production', 'support-bot-staging']) {
      expect(await readFile(join(outdir, `${name}.k8s.yaml`), 'utf8')).toBe(await readFile(join(GOLDEN, `${name}.yaml`), 'utf8'));
    }
  }, 60_000);

  it('fails on an invalid route with the same lines as llmroute validate, writing nothing', async () => {
    const outdir = await mkdtemp(join(tmpdir(), 'llmroute-synth-'));
    const result = await synthRoutes(['test/api/invalid/pin-floating.yaml'], outdir);
    expect(result.ok).toBe(false);
    expect(result.messages).toEqual([expect.stringMatching(/^test\/api\/invalid\/pin-floating\.yaml:\d+:\d+: spec\.models\[0\]\.pin: "gpt-4o" is a floating alias/)]);
    expect(await readdir(outdir)).toEqual([]);
  });
});
