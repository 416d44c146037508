/** The pure render function: an LLMRoute environment in, plain Kubernetes objects out. */
import { App } from 'cdk8s';
import { LlmRoute, type LlmRouteProps } from './llmroute.js';

export type KubernetesObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
};

export interface Rendered {
  objects: KubernetesObject[];
  configHash: string;
  configJson: string;
}

/** Kinds in the order a person reads them and the API server wants them (identity and config before workloads). */
const KIND_ORDER = ['ServiceAccount', 'ExternalSecret', 'ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Service', 'NetworkPolicy', 'ServiceMonitor', 'PrometheusRule'];

export function renderEnvironment(props: Omit<LlmRouteProps, 'disableResourceNameHashes'>): Rendered {
  const app = new App({ outdir: '/nonexistent' });
  const chart = new LlmRoute(app, `${props.route.metadata.name}-${props.environment}`, props);
  const objects = (chart.toJson() as KubernetesObject[]).sort(
    (a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind) || a.metadata.name.localeCompare(b.metadata.name),
  );
  return { objects, configHash: chart.configHash, configJson: chart.configJson };
}
