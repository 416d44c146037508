/**
 * Rendered manifests against a real API server: every environment of every example route (and the render variants)
 * renders to objects that the API server accepts in a server-side dry run, both as `llmroute render` prints them
 * (create) and as the controller will send them (server-side apply, owned by the LLMRoute).
 *
 * The objects go through kubectl as YAML, not through client-node: its serializer drops fields it does not know for
 * built-in kinds, which would hide exactly the mistakes this test is for. kubectl's default strict field validation
 * makes the API server reject unknown fields instead (the last test shows that it does). ExternalSecret,
 * ServiceMonitor and PrometheusRule are checked against test fixture CRDs that accept any spec (test/k8s/fixtures):
 * for those, this proves the kind, version, names and metadata, not the spec.
 */
import { beforeAll, describe, expect, it, jest } from '@jest/globals';
import { loadRoutes } from '../../src/api/files.js';
import type { LLMRoute } from '../../src/api/schema.js';
import { renderEnvironment, type KubernetesObject } from '../../src/render/render.js';
import { toYaml } from '../../src/render/yaml.js';
import { createNamespace, ensureNamespace, kubectl, type CommandResult } from '../k8s/cluster.js';

// kubectl runs take a fraction of a second each, dozens of them in a hook; `testTimeout` in a jest project is ignored.
jest.setTimeout(60_000);

const SOURCES = ['examples/', 'test/render/routes/variants.yaml'];
const { routes, findings } = await loadRoutes(SOURCES);
const CASES = routes.flatMap(({ file, route }) => route.spec.environments.map((env) => [file, route.metadata.name, env.name, route] as const));

let scratch: string;

beforeAll(async () => {
  // Routes without a namespace render into this one (the `namespace` render option, as `llmroute render -n` does).
  scratch = await createNamespace('dry-run');
  for (const namespace of new Set(routes.map((r) => r.route.metadata.namespace).filter((n): n is string => !!n))) await ensureNamespace(namespace);
});

function render(route: LLMRoute, environment: string, owned: boolean): KubernetesObject[] {
  const owner = owned ? { apiVersion: 'llmroute.dev/v1alpha1', kind: 'LLMRoute', name: route.metadata.name, uid: '00000000-0000-4000-8000-000000000001' } : undefined;
  return renderEnvironment({ route, environment, ...(route.metadata.namespace ? {} : { namespace: scratch }), ...(owner ? { owner } : {}) }).objects;
}

/** `<resource>.<group>/<name>` (or `<resource>/<name>` for the core group), as kubectl prints it. */
const objectRef = (o: KubernetesObject) => {
  const group = o.apiVersion.includes('/') ? `.${o.apiVersion.split('/')[0]}` : '';
  return `${o.kind.toLowerCase()}${group}/${o.metadata.name}`;
};

function expectAccepted(result: CommandResult, objects: KubernetesObject[], verb: string): void {
  if (result.code !== 0) throw new Error(`kubectl exited ${result.code}:\n${result.stderr}${result.stdout}`);
  expect(result.stderr).toBe('');
  const lines = result.stdout.trim().split('\n').sort();
  expect(lines).toEqual(objects.map((o) => `${objectRef(o)} ${verb} (server dry run)`).sort());
}

describe('rendered manifests pass a server-side dry run', () => {
  it('has routes to render, and they are valid', () => {
    expect(findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(CASES.map(([, name, env]) => `${name}/${env}`)).toEqual(expect.arrayContaining(['quickstart/dev', 'support-bot/staging', 'support-bot/production', 'variants/single']));
  });

  it.each(CASES)('%s: %s, environment %s, as llmroute render prints it (create)', async (_file, _name, environment, route) => {
    const objects = render(route, environment, false);
    expect(objects.every((o) => o.metadata.namespace)).toBe(true);
    const result = await kubectl(['create', '--dry-run=server', '--validate=strict', '-f', '-'], { input: toYaml(objects) });
    expectAccepted(result, objects, 'created');
  });

  it.each(CASES)('%s: %s, environment %s, as the controller sends it (server-side apply, owned by the LLMRoute)', async (_file, _name, environment, route) => {
    const objects = render(route, environment, true);
    const result = await kubectl(['apply', '--server-side', '--dry-run=server', '--validate=strict', '--field-manager=llmroute', '-f', '-'], { input: toYaml(objects) });
    expectAccepted(result, objects, 'serverside-applied');
  });

  it('would notice an unknown field: strict validation is in force', async () => {
    const [, , environment, route] = CASES[0]!;
    const objects = render(route, environment, false);
    const deployment = objects.find((o) => o.kind === 'Deployment')!;
    const broken = { ...deployment, spec: { ...(deployment.spec as object), replicaz: 2 } };
    const result = await kubectl(['create', '--dry-run=server', '--validate=strict', '-f', '-'], { input: toYaml([broken]) });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('unknown field "spec.replicaz"');
  });
});
