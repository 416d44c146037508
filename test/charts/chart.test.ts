/**
 * The Helm chart (charts/llmroute), rendered by the real helm binary that test/k8s/tools.sh unpacks: lint, what the
 * controller's Deployment looks like, exactly which RBAC it gets (compared to the table below, so a new verb is a
 * deliberate change here, in the chart and in its README), and that the chart's CRD is the generated one.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { VERSION } from '../../src/version.js';

const CHART = 'charts/llmroute';
const RELEASE = 'llmroute';
const NAMESPACE = 'llmroute-system';
const IMAGE = `ghcr.io/llmroute/llmroute:${VERSION}`;
const UID = 65532;

// --- The RBAC the controller gets, one row per (API group, resource). -----------------------------------------------

type Grant = [apiGroup: string, resource: string, verbs: string[]];
/** get/list/watch for the cache, create + patch for server-side apply (an apply that creates is authorized as create too), delete to prune. */
const APPLIED = ['get', 'list', 'watch', 'create', 'patch', 'delete'];
/** Wherever LLMRoutes are reconciled: a ClusterRole, or a Role per watched namespace. */
const RECONCILE_GRANTS: Grant[] = [
  ['llmroute.dev', 'llmroutes', ['get', 'list', 'watch']],
  ['llmroute.dev', 'llmroutes/status', ['patch']],
  ['llmroute.dev', 'llmroutes/finalizers', ['update']],
  ['', 'configmaps', APPLIED],
  ['', 'services', APPLIED],
  ['', 'serviceaccounts', APPLIED],
  ['apps', 'deployments', APPLIED],
  ['policy', 'poddisruptionbudgets', APPLIED],
  ['networking.k8s.io', 'networkpolicies', APPLIED],
  ['external-secrets.io', 'externalsecrets', APPLIED],
  ['monitoring.coreos.com', 'servicemonitors', APPLIED],
  ['monitoring.coreos.com', 'prometheusrules', APPLIED],
  ['', 'secrets', ['get']],
  ['', 'events', ['create']],
];
/** In the controller's own namespace only. */
const LEADER_ELECTION_GRANTS: Grant[] = [['coordination.k8s.io', 'leases', ['get', 'create', 'update']]];

// --- helm ------------------------------------------------------------------------------------------------------------

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}
interface Rule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}
// Only the fields the assertions read.
interface Container {
  name: string;
  image: string;
  imagePullPolicy: string;
  args: string[];
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  securityContext: Record<string, unknown>;
  resources: unknown;
  volumeMounts: { name: string; mountPath: string }[];
}
interface Deployment extends K8sObject {
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string> };
      spec: {
        serviceAccountName: string;
        automountServiceAccountToken: boolean;
        securityContext: Record<string, unknown>;
        containers: Container[];
        volumes: { name: string; emptyDir?: object }[];
        topologySpreadConstraints?: { topologyKey: string; labelSelector: { matchLabels: Record<string, string> } }[];
      };
    };
  };
}

let helmBin = '';
let helmHome = '';

beforeAll(() => {
  const out = execFileSync('bash', ['test/k8s/tools.sh'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  helmBin = join(out.trim().split('\n').at(-1) ?? '', 'helm');
  // Keep helm's cache, config and data out of the user's home.
  helmHome = mkdtempSync(join(tmpdir(), 'llmroute-helm-'));
}, 120_000);

afterAll(() => {
  if (helmHome) rmSync(helmHome, { recursive: true, force: true });
});

function helm(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const env = { ...process.env, HELM_CACHE_HOME: join(helmHome, 'cache'), HELM_CONFIG_HOME: join(helmHome, 'config'), HELM_DATA_HOME: join(helmHome, 'data') };
  const { status, stdout, stderr } = spawnSync(helmBin, args, { encoding: 'utf8', env });
  return { status, stdout, stderr };
}

/** Value flags: `--set-json key=<json>` for each entry. */
function valueArgs(values: Record<string, unknown>): string[] {
  return Object.entries(values).flatMap(([key, value]) => ['--set-json', `${key}=${JSON.stringify(value)}`]);
}

function template(values: Record<string, unknown> = {}): K8sObject[] {
  const result = helm(['template', RELEASE, CHART, '--namespace', NAMESPACE, ...valueArgs(values)]);
  if (result.status !== 0) throw new Error(`helm template failed:\n${result.stderr}`);
  return parseAllDocuments(result.stdout)
    .map((doc) => doc.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

function templateError(values: Record<string, unknown>): string {
  const result = helm(['template', RELEASE, CHART, '--namespace', NAMESPACE, ...valueArgs(values)]);
  expect(result.status).not.toBe(0);
  return result.stderr;
}

function only<T extends K8sObject = K8sObject>(objects: K8sObject[], kind: string, namespace?: string): T {
  const found = objects.filter((o) => o.kind === kind && (namespace === undefined || o.metadata.namespace === namespace));
  if (found.length !== 1) throw new Error(`expected one ${kind}${namespace ? ` in ${namespace}` : ''}, found ${found.length}`);
  return found[0] as T;
}

function containerOf(deployment: Deployment): Container {
  const [container, ...rest] = deployment.spec.template.spec.containers;
  if (!container || rest.length > 0) throw new Error('expected exactly one container');
  return container;
}

/** Rules as sorted (group, resource, sorted verbs) rows; a resource granted twice shows up twice. */
function grantsOf(rules: Rule[]): Grant[] {
  return rules.flatMap((rule) => (rule.apiGroups ?? []).flatMap((group) => (rule.resources ?? []).map((resource): Grant => [group, resource, [...rule.verbs].sort()])));
}
function sortedGrants(grants: Grant[]): Grant[] {
  return grants.map(([g, r, v]): Grant => [g, r, [...v].sort()]).sort((a, b) => `${a[0]}/${a[1]}`.localeCompare(`${b[0]}/${b[1]}`));
}
function rulesOf(object: K8sObject): Rule[] {
  return object.rules as Rule[];
}

// --- Tests -----------------------------------------------------------------------------------------------------------

describe('chart metadata', () => {
  it("version and appVersion equal package.json's version", () => {
    const chart = parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as { apiVersion: string; name: string; version: string; appVersion: string };
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    expect(chart).toMatchObject({ apiVersion: 'v2', name: 'llmroute', version: pkg.version, appVersion: pkg.version });
    expect(VERSION).toBe(pkg.version);
  });

  it('ships crds/ byte for byte (`npm run generate` writes both)', () => {
    const yamlIn = (dir: string) => readdirSync(dir).filter((n) => /\.ya?ml$/.test(n)).sort();
    expect(yamlIn(join(CHART, 'crds'))).toEqual(yamlIn('crds'));
    expect(yamlIn('crds')).toContain('llmroute.dev_llmroutes.yaml');
    for (const name of yamlIn('crds')) {
      expect(readFileSync(join(CHART, 'crds', name)).equals(readFileSync(join('crds', name)))).toBe(true);
    }
  });

  it('helm installs that CRD unchanged', () => {
    const result = helm(['show', 'crds', CHART]);
    expect(result.status).toBe(0);
    const shown = parseAllDocuments(result.stdout).map((d) => d.toJS() as unknown).filter((d) => d !== null);
    expect(shown).toEqual([parse(readFileSync('crds/llmroute.dev_llmroutes.yaml', 'utf8'))]);
  });

  it('templates nothing from crds/ (Helm installs it only when absent and never upgrades it)', () => {
    expect(template().filter((o) => o.kind === 'CustomResourceDefinition')).toEqual([]);
  });
});

describe('helm lint', () => {
  const cases: [string, Record<string, unknown>][] = [
    ['defaults', {}],
    ['watchNamespaces and serviceMonitor', { watchNamespaces: ['a', 'b'], 'serviceMonitor.enabled': true, prometheusUrl: 'http://prometheus.monitoring.svc:9090' }],
  ];
  it.each(cases)('passes with %s, also --strict', (_name, values) => {
    for (const strict of [[], ['--strict']]) {
      const result = helm(['lint', CHART, ...strict, ...valueArgs(values)]);
      expect({ status: result.status, output: result.stdout + result.stderr }).toMatchObject({ status: 0 });
      expect(result.stdout).toContain('0 chart(s) failed');
    }
  });
});

describe('defaults', () => {
  let objects: K8sObject[];
  let deployment: Deployment;
  let container: Container;
  beforeAll(() => {
    objects = template();
    deployment = only<Deployment>(objects, 'Deployment');
    container = containerOf(deployment);
  });

  it('renders exactly the controller, its account, RBAC, metrics Service and PodDisruptionBudget', () => {
    expect(objects.map((o) => `${o.kind} ${o.metadata.namespace ?? '-'}/${o.metadata.name}`).sort()).toEqual(
      [
        `ClusterRole -/llmroute-controller`,
        `ClusterRoleBinding -/llmroute-controller`,
        `Deployment ${NAMESPACE}/llmroute`,
        `PodDisruptionBudget ${NAMESPACE}/llmroute`,
        `Role ${NAMESPACE}/llmroute-leader-election`,
        `RoleBinding ${NAMESPACE}/llmroute-leader-election`,
        `Service ${NAMESPACE}/llmroute-metrics`,
        `ServiceAccount ${NAMESPACE}/llmroute`,
      ].sort(),
    );
  });

  it('labels every object with the recommended labels', () => {
    for (const object of objects) {
      expect(object.metadata.labels).toMatchObject({
        'app.kubernetes.io/name': 'llmroute',
        'app.kubernetes.io/instance': RELEASE,
        'app.kubernetes.io/version': VERSION,
        'app.kubernetes.io/component': 'controller',
        'app.kubernetes.io/part-of': 'llmroute',
        'app.kubernetes.io/managed-by': 'Helm',
      });
    }
  });

  it('runs 2 replicas of `llmroute controller` with the API token mounted', () => {
    expect(deployment.spec.replicas).toBe(2);
    expect(deployment.spec.template.metadata.labels).toMatchObject(deployment.spec.selector.matchLabels);
    const pod = deployment.spec.template.spec;
    expect(pod.automountServiceAccountToken).toBe(true);
    expect(pod.serviceAccountName).toBe('llmroute');
    expect(only(objects, 'ServiceAccount')).toMatchObject({ metadata: { name: 'llmroute' }, automountServiceAccountToken: true });
    expect(container.image).toBe(IMAGE);
    expect(container.imagePullPolicy).toBe('IfNotPresent');
    expect(container.args).toEqual([
      'controller',
      '--leader-elect=true',
      `--leader-election-namespace=${NAMESPACE}`,
      '--metrics-port=8080',
      '--health-port=8081',
      `--gateway-image=${IMAGE}`,
      '--resync=5m',
      '--workers=8',
      '--log-level=info',
    ]);
    expect(container.resources).toEqual({ requests: { cpu: '50m', memory: '128Mi' }, limits: { memory: '384Mi' } });
  });

  it('has the restricted security context, with an emptyDir for /tmp', () => {
    const pod = deployment.spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: UID, seccompProfile: { type: 'RuntimeDefault' } });
    expect(container.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: UID,
      runAsGroup: UID,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container.volumeMounts).toEqual([{ name: 'tmp', mountPath: '/tmp' }]);
    expect(pod.volumes.find((v) => v.name === 'tmp')?.emptyDir).toBeDefined();
  });

  it('probes /healthz and /readyz on the health port; the metrics Service targets the metrics port', () => {
    expect(container.ports).toEqual([
      { name: 'metrics', containerPort: 8080, protocol: 'TCP' },
      { name: 'health', containerPort: 8081, protocol: 'TCP' },
    ]);
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'health' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'health' });
    const service = only(objects, 'Service') as K8sObject & { spec: { selector: Record<string, string>; ports: { name: string; port: number; targetPort: string }[] } };
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels);
    expect(service.spec.ports).toEqual([{ name: 'metrics', port: 8080, targetPort: 'metrics', protocol: 'TCP' }]);
  });

  it('spreads replicas over zones and nodes and keeps one through a drain', () => {
    const spread = deployment.spec.template.spec.topologySpreadConstraints ?? [];
    expect(spread.map((c) => c.topologyKey)).toEqual(['topology.kubernetes.io/zone', 'kubernetes.io/hostname']);
    for (const constraint of spread) expect(constraint.labelSelector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    expect(only(objects, 'PodDisruptionBudget')).toMatchObject({ spec: { minAvailable: 1, selector: { matchLabels: deployment.spec.selector.matchLabels } } });
  });

  it('grants exactly the documented rules cluster-wide, bound to the controller', () => {
    const role = only(objects, 'ClusterRole');
    expect(sortedGrants(grantsOf(rulesOf(role)))).toEqual(sortedGrants(RECONCILE_GRANTS));
    expect(only(objects, 'ClusterRoleBinding')).toMatchObject({
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name },
      subjects: [{ kind: 'ServiceAccount', name: 'llmroute', namespace: NAMESPACE }],
    });
  });

  it('grants the leader-election Lease in its own namespace only', () => {
    const role = only(objects, 'Role');
    expect(role.metadata.namespace).toBe(NAMESPACE);
    expect(sortedGrants(grantsOf(rulesOf(role)))).toEqual(sortedGrants(LEADER_ELECTION_GRANTS));
    expect(only(objects, 'RoleBinding')).toMatchObject({
      metadata: { namespace: NAMESPACE },
      roleRef: { kind: 'Role', name: role.metadata.name },
      subjects: [{ kind: 'ServiceAccount', name: 'llmroute', namespace: NAMESPACE }],
    });
  });

  it('reads Secrets only by name (get), never list or watch, and grants no wildcards', () => {
    const rules = objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role').flatMap(rulesOf);
    const secretGrants = grantsOf(rules).filter(([group, resource]) => group === '' && resource === 'secrets');
    expect(secretGrants).toEqual([['', 'secrets', ['get']]]);
    for (const rule of rules) {
      expect([...(rule.apiGroups ?? []), ...(rule.resources ?? []), ...rule.verbs]).not.toContain('*');
      expect(rule.resourceNames).toBeUndefined();
      expect(rule.nonResourceURLs).toBeUndefined();
    }
  });
});

describe('watchNamespaces: [a, b] and serviceMonitor.enabled', () => {
  let objects: K8sObject[];
  beforeAll(() => {
    objects = template({ watchNamespaces: ['a', 'b'], 'serviceMonitor.enabled': true, 'serviceMonitor.labels': { release: 'kube-prometheus-stack' } });
  });

  it('grants nothing cluster-wide', () => {
    expect(objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding')).toEqual([]);
  });

  it.each(['a', 'b'])('grants the reconcile rules in namespace %s, bound to the controller in its own namespace', (namespace) => {
    const role = only(objects, 'Role', namespace);
    expect(sortedGrants(grantsOf(rulesOf(role)))).toEqual(sortedGrants(RECONCILE_GRANTS));
    expect(only(objects, 'RoleBinding', namespace)).toMatchObject({
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name },
      subjects: [{ kind: 'ServiceAccount', name: 'llmroute', namespace: NAMESPACE }],
    });
  });

  it('keeps the leader-election Role in the release namespace, and no other Roles', () => {
    expect(objects.filter((o) => o.kind === 'Role').map((o) => o.metadata.namespace).sort()).toEqual(['a', 'b', NAMESPACE]);
    expect(sortedGrants(grantsOf(rulesOf(only(objects, 'Role', NAMESPACE))))).toEqual(sortedGrants(LEADER_ELECTION_GRANTS));
  });

  it('passes --namespaces to the controller', () => {
    expect(containerOf(only<Deployment>(objects, 'Deployment')).args).toContain('--namespaces=a,b');
  });

  it('creates a ServiceMonitor that scrapes the metrics Service', () => {
    const service = only(objects, 'Service') as K8sObject & { spec: { ports: { name: string }[] } };
    const monitor = only(objects, 'ServiceMonitor') as K8sObject & { spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] } };
    expect(monitor.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(monitor.metadata.labels).toMatchObject({ release: 'kube-prometheus-stack', 'app.kubernetes.io/name': 'llmroute' });
    expect(service.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(monitor.spec.endpoints).toEqual([{ port: 'metrics', path: '/metrics', interval: '30s' }]);
    expect(service.spec.ports.map((p) => p.name)).toContain('metrics');
  });
});

describe('values', () => {
  it('refuses several replicas without leader election', () => {
    expect(templateError({ 'leaderElection.enabled': false })).toContain('replicaCount > 1 needs leaderElection.enabled: true');
  });

  it('runs a single replica without leader election: no Lease Role, PodDisruptionBudget or spread', () => {
    const objects = template({ replicaCount: 1, 'leaderElection.enabled': false });
    const deployment = only<Deployment>(objects, 'Deployment');
    expect(objects.map((o) => o.kind)).not.toEqual(expect.arrayContaining(['Role']));
    expect(objects.map((o) => o.kind)).not.toEqual(expect.arrayContaining(['PodDisruptionBudget']));
    expect(deployment.spec.template.spec.topologySpreadConstraints).toBeUndefined();
    expect(containerOf(deployment).args.filter((a) => a.startsWith('--leader'))).toEqual(['--leader-elect=false']);
  });

  it('rejects unknown keys such as installCRDs (use helm install --skip-crds)', () => {
    expect(templateError({ installCRDs: false })).toMatch(/additional properties 'installCRDs' not allowed/);
  });

  it('passes prometheusUrl and uses the image digest for both controller and gateways', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const objects = template({ prometheusUrl: 'http://prometheus.monitoring.svc:9090', 'image.digest': digest });
    const container = containerOf(only<Deployment>(objects, 'Deployment'));
    expect(container.image).toBe(`ghcr.io/llmroute/llmroute@${digest}`);
    expect(container.args).toContain(`--gateway-image=ghcr.io/llmroute/llmroute@${digest}`);
    expect(container.args).toContain('--prometheus-url=http://prometheus.monitoring.svc:9090');
  });
});

describe('README', () => {
  it('documents every grant in its RBAC table', () => {
    const readme = readFileSync(join(CHART, 'README.md'), 'utf8');
    const section = readme.split(/^## /m).find((s) => s.startsWith('RBAC')) ?? '';
    const rows = section
      .split('\n')
      .filter((line) => line.startsWith('|') && !/^\|\s*(API group|-)/.test(line))
      .map((line) => line.split('|').slice(1, -1).map((cell) => cell.trim().replaceAll('`', '')));
    const documented = rows.map(([group = '', resource = '', verbs = '']): Grant => [group === 'core' ? '' : group, resource, verbs.split(/,\s*/)]);
    expect(sortedGrants(documented)).toEqual(sortedGrants([...RECONCILE_GRANTS, ...LEADER_ELECTION_GRANTS]));
  });
});
