/**
 * `LlmRoute`: the cdk8s construct for one environment of an LLMRoute, exported for use in your own cdk8s apps.
 * The controller and `cdk8s synth` both render through it, so the two paths cannot disagree.
 */
import { ApiObject, Chart, type ChartProps } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import type { Construct } from 'constructs';
import { canonicalJson, configHash } from '../api/canonical-json.js';
import { API_PORT, compileEnvironment, environmentOf, METRICS_PORT } from '../api/compile.js';
import { rolloutIdentity } from '../api/gateway-config.js';
import { CONFIG_FILE_NAME, clientMounts, keyMounts, redisMount } from '../api/mounts.js';
import type { LLMRoute } from '../api/schema.js';
import { DEFAULT_IMAGE } from '../version.js';
import { GRAFANA_DASHBOARD_LABEL, environmentDashboardFile, gatewayDashboardJson } from './dashboards.js';
import { ExternalSecrets } from './external-secrets.js';
import { GatewayDeployment } from './gateway-deployment.js';
import { commonLabels, instanceName, selectorLabels } from './labels.js';
import { Monitoring } from './monitoring.js';
import { GatewayNetworkPolicy } from './network-policy.js';

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
}

export interface LlmRouteProps extends ChartProps {
  route: LLMRoute;
  environment: string;
  /** Defaults to the route's namespace; omitted when neither is set, so `kubectl apply -n` decides. */
  namespace?: string;
  image?: string;
  /** Flag percentages decided by the controller's rollouts. */
  flagPercents?: Readonly<Record<string, number>>;
  /** Set by the controller: every object is owned by the LLMRoute, so deleting it deletes them. */
  owner?: OwnerReference;
}

export class LlmRoute extends Chart {
  /** The compiled gateway config, as mounted; exposed for status and tests. */
  readonly configJson: string;
  readonly configHash: string;

  constructor(scope: Construct, id: string, props: LlmRouteProps) {
    super(scope, id, { ...props, disableResourceNameHashes: true });
    const { route } = props;
    const environment = environmentOf(route, props.environment);
    const namespace = props.namespace ?? route.metadata.namespace;
    const name = instanceName(route, environment.name);
    const labels = commonLabels(route, environment.name);

    const config = compileEnvironment(route, environment.name, { flagPercents: props.flagPercents });
    this.configJson = `${canonicalJson(config, 2)}\n`;
    this.configHash = configHash(rolloutIdentity(config));

    const serviceAccount = new kplus.ServiceAccount(this, 'service-account', {
      metadata: { name, namespace, labels },
      // The gateway never talks to the Kubernetes API.
      automountToken: false,
    });
    const configMap = new kplus.ConfigMap(this, 'config', {
      metadata: { name, namespace, labels, annotations: { 'llmroute.dev/config-hash': this.configHash } },
      data: { [CONFIG_FILE_NAME]: this.configJson },
    });
    const keys = keyMounts(route, environment);
    const redis = redisMount(environment);
    new ExternalSecrets(this, 'keys', { route, environment: environment.name, namespace, keys });
    new GatewayDeployment(this, 'gateway', {
      route,
      environment,
      namespace,
      image: props.image ?? DEFAULT_IMAGE,
      configMap,
      configHash: this.configHash,
      serviceAccount,
      secretMounts: [...keys, ...clientMounts(route), ...(redis ? [redis] : [])],
    });
    new kplus.k8s.KubeService(this, 'service', {
      metadata: { name, namespace, labels },
      spec: {
        type: 'ClusterIP',
        selector: selectorLabels(route, environment.name),
        ports: [
          { name: 'http', port: 80, targetPort: kplus.k8s.IntOrString.fromString('http'), protocol: 'TCP' },
          { name: 'metrics', port: METRICS_PORT, targetPort: kplus.k8s.IntOrString.fromString('metrics'), protocol: 'TCP' },
        ],
      },
    });
    new GatewayNetworkPolicy(this, 'network-policy', { route, environment: environment.name, namespace });
    new Monitoring(this, 'monitoring', { route, environment: environment.name, namespace });
    // The environment's Grafana dashboard, for the Grafana sidecar (label grafana_dashboard: "1").
    new kplus.ConfigMap(this, 'dashboard', {
      metadata: { name: `${name}-dashboard`, namespace, labels: { ...commonLabels(route, environment.name, 'dashboard'), ...GRAFANA_DASHBOARD_LABEL } },
      data: {
        [environmentDashboardFile(route.metadata.name, environment.name)]: gatewayDashboardJson({
          route: route.metadata.name,
          environment: environment.name,
          ...(namespace ? { namespace } : {}),
        }),
      },
    });

    if (props.owner) {
      const owner = { ...props.owner, controller: true, blockOwnerDeletion: true };
      for (const object of this.node.findAll()) {
        if (object instanceof ApiObject) object.metadata.addOwnerReference(owner);
      }
    }
  }
}

export { API_PORT };
