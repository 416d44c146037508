/**
 * Who may reach the gateway: the API port from the peers the route allows (by default every pod in its own namespace),
 * the metrics port from the monitoring namespace. Egress is left open: providers live outside the cluster at
 * addresses a NetworkPolicy cannot name.
 */
import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { API_PORT, METRICS_PORT } from '../api/compile.js';
import type { LLMRoute } from '../api/schema.js';
import { commonLabels, instanceName, selectorLabels } from './labels.js';

const { IntOrString } = kplus.k8s;

export interface GatewayNetworkPolicyProps {
  route: LLMRoute;
  environment: string;
  namespace?: string;
}

export class GatewayNetworkPolicy extends Construct {
  constructor(scope: Construct, id: string, { route, environment, namespace }: GatewayNetworkPolicyProps) {
    super(scope, id);
    const network = route.spec.network;
    // An empty podSelector selects every pod of the namespace.
    const apiPeers = network.allowFrom?.length ? network.allowFrom : [{ podSelector: {} }];
    new kplus.k8s.KubeNetworkPolicy(this, 'policy', {
      metadata: { name: instanceName(route, environment), namespace, labels: commonLabels(route, environment) },
      spec: {
        podSelector: { matchLabels: selectorLabels(route, environment) },
        policyTypes: ['Ingress'],
        ingress: [
          { from: apiPeers, ports: [{ protocol: 'TCP', port: IntOrString.fromNumber(API_PORT) }] },
          {
            from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': network.metricsNamespace } } }],
            ports: [{ protocol: 'TCP', port: IntOrString.fromNumber(METRICS_PORT) }],
          },
        ],
      },
    });
  }
}
