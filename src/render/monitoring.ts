/** ServiceMonitor and PrometheusRule (prometheus-operator). Prometheus picks only objects whose labels its selectors match, hence `alerts.labels`. */
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import type { LLMRoute } from '../api/schema.js';
import { alertRuleGroups } from './alerts.js';
import { commonLabels, instanceName, selectorLabels } from './labels.js';

export interface MonitoringProps {
  route: LLMRoute;
  environment: string;
  namespace?: string;
}

export class Monitoring extends Construct {
  constructor(scope: Construct, id: string, { route, environment, namespace }: MonitoringProps) {
    super(scope, id);
    const name = instanceName(route, environment);
    const labels = { ...route.spec.alerts.labels, ...commonLabels(route, environment, 'monitoring') };
    new ApiObject(this, 'service-monitor', {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: { name, namespace, labels },
      spec: {
        selector: { matchLabels: selectorLabels(route, environment) },
        // `job` is the Service name, which the alert rules select on.
        jobLabel: 'app.kubernetes.io/instance',
        endpoints: [{ port: 'metrics', path: '/metrics', interval: '30s' }],
      },
    });
    new ApiObject(this, 'prometheus-rule', {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: { name, namespace, labels },
      spec: { groups: alertRuleGroups(route, environment, namespace) },
    });
  }
}
