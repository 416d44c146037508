/** Names and labels of rendered objects: Kubernetes' recommended labels plus two of ours for selection and pruning. */
import type { LLMRoute } from '../api/schema.js';

export const ROUTE_LABEL = 'llmroute.dev/route';
export const ENVIRONMENT_LABEL = 'llmroute.dev/environment';
export const CONFIG_HASH_ANNOTATION = 'llmroute.dev/config-hash';
export const MANAGED_BY = 'llmroute';

/** `<route>-<environment>`: validation guarantees it is a DNS-1035 label of at most 63 characters. */
export function instanceName(route: LLMRoute, environment: string): string {
  return `${route.metadata.name}-${environment}`;
}

/** The immutable subset that selects the gateway pods; a Deployment's selector cannot change after creation. */
export function selectorLabels(route: LLMRoute, environment: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'llmroute-gateway',
    'app.kubernetes.io/instance': instanceName(route, environment),
  };
}

export function commonLabels(route: LLMRoute, environment: string, component = 'gateway'): Record<string, string> {
  return {
    ...selectorLabels(route, environment),
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/part-of': route.metadata.name,
    'app.kubernetes.io/managed-by': MANAGED_BY,
    [ROUTE_LABEL]: route.metadata.name,
    [ENVIRONMENT_LABEL]: environment,
  };
}
