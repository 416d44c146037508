/**
 * The kinds the controller reads and writes, with their REST coordinates. A fixed table rather than discovery: the
 * controller only ever touches these, and RBAC (charts/llmroute) grants exactly these.
 */
import { API_VERSION, KIND, PLURAL } from '../api/group.js';

export interface ResourceType {
  apiVersion: string;
  kind: string;
  plural: string;
}

const table: ResourceType[] = [
  { apiVersion: API_VERSION, kind: KIND, plural: PLURAL },
  { apiVersion: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts' },
  { apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps' },
  { apiVersion: 'v1', kind: 'Service', plural: 'services' },
  { apiVersion: 'v1', kind: 'Secret', plural: 'secrets' },
  { apiVersion: 'v1', kind: 'Event', plural: 'events' },
  { apiVersion: 'apps/v1', kind: 'Deployment', plural: 'deployments' },
  { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', plural: 'poddisruptionbudgets' },
  { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', plural: 'networkpolicies' },
  { apiVersion: 'external-secrets.io/v1', kind: 'ExternalSecret', plural: 'externalsecrets' },
  { apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', plural: 'servicemonitors' },
  { apiVersion: 'monitoring.coreos.com/v1', kind: 'PrometheusRule', plural: 'prometheusrules' },
];

/** The kinds rendered per environment, which pruning lists by label. */
export const OWNED_KINDS = ['ServiceAccount', 'ExternalSecret', 'ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Service', 'NetworkPolicy', 'ServiceMonitor', 'PrometheusRule'];

export function resourceOf(apiVersion: string, kind: string): ResourceType {
  const found = table.find((r) => r.apiVersion === apiVersion && r.kind === kind);
  if (!found) throw new Error(`llmroute does not manage ${apiVersion} ${kind}`);
  return found;
}

export function resourceByKind(kind: string): ResourceType {
  const found = table.find((r) => r.kind === kind);
  if (!found) throw new Error(`llmroute does not manage kind ${kind}`);
  return found;
}

/** `/api/v1/namespaces/ns/configmaps/name` or `/apis/apps/v1/namespaces/ns/deployments` (collection). */
export function resourcePath(type: ResourceType, namespace: string | undefined, name?: string, subresource?: string): string {
  const base = type.apiVersion.includes('/') ? `/apis/${type.apiVersion}` : `/api/${type.apiVersion}`;
  const ns = namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  const item = name ? `/${encodeURIComponent(name)}` : '';
  return `${base}${ns}/${type.plural}${item}${subresource ? `/${subresource}` : ''}`;
}
