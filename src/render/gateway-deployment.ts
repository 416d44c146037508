/**
 * The gateway Deployment (and its PodDisruptionBudget). cdk8s-plus-27 would inject defaults of its own (2 replicas,
 * 1 CPU / 512Mi, `imagePullPolicy: Always`, hashed names, anti-affinity instead of topology spread); every one of them
 * is set here on purpose, and what plus-27 cannot express is added as a JSON patch.
 */
import { ApiObject, Duration, JsonPatch, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { API_PORT, METRICS_PORT } from '../api/compile.js';
import { CONFIG_FILE_NAME, CONFIG_MOUNT, VALUE_FILE, type SecretMount } from '../api/mounts.js';
import type { Environment, LLMRoute } from '../api/schema.js';
import { commonLabels, CONFIG_HASH_ANNOTATION, instanceName, selectorLabels } from './labels.js';

/** The image's user: distroless-style "nonroot", so nothing in the image needs root. */
const NON_ROOT_UID = 65532;
/** Time for the Service endpoints to drop the pod before it stops accepting connections. */
const DRAIN_SECONDS = 15;
const SECCOMP = { type: 'RuntimeDefault' };

export interface GatewayDeploymentProps {
  route: LLMRoute;
  environment: Environment;
  namespace?: string;
  image: string;
  configMap: kplus.IConfigMap;
  configHash: string;
  serviceAccount: kplus.IServiceAccount;
  /** Every Secret the gateway reads: provider keys, client tokens, the Redis URL. */
  secretMounts: SecretMount[];
}

function quantities(values: Record<string, string | undefined>): Record<string, kplus.k8s.Quantity> {
  return Object.fromEntries(Object.entries(values).flatMap(([name, value]) => (value === undefined ? [] : [[name, kplus.k8s.Quantity.fromString(value)]])));
}

/**
 * The gateway's OpenTelemetry variables (src/gateway/tracing-settings.ts reads them; the OTLP exporter reads the
 * headers itself), or none without `gateway.tracing`, which leaves tracing off. The headers may carry a backend's API
 * key: they come from their Secret, never from a value in the manifest.
 */
export function tracingEnv(route: LLMRoute, environment: Environment): kplus.k8s.EnvVar[] {
  const tracing = environment.gateway.tracing;
  if (!tracing) return [];
  const headers = tracing.headersSecretRef;
  return [
    { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: tracing.endpoint },
    { name: 'OTEL_TRACES_SAMPLER', value: 'parentbased_traceidratio' },
    { name: 'OTEL_TRACES_SAMPLER_ARG', value: String(tracing.sampleRatio) },
    { name: 'OTEL_SERVICE_NAME', value: tracing.serviceName ?? instanceName(route, environment.name) },
    ...(headers ? [{ name: 'OTEL_EXPORTER_OTLP_HEADERS', valueFrom: { secretKeyRef: { name: headers.name, key: headers.key } } }] : []),
  ];
}

/** Long enough for the longest request a model allows to finish, plus the drain. */
export function terminationGraceSeconds(route: LLMRoute): number {
  return Math.max(...route.spec.models.map((m) => m.timeouts.totalSeconds)) + DRAIN_SECONDS;
}

export class GatewayDeployment extends Construct {
  readonly deployment: kplus.Deployment;

  constructor(scope: Construct, id: string, props: GatewayDeploymentProps) {
    super(scope, id);
    const { route, environment } = props;
    const name = instanceName(route, environment.name);
    const labels = commonLabels(route, environment.name);
    const replicas = environment.gateway.replicas;

    this.deployment = new kplus.Deployment(this, 'deployment', {
      metadata: { name, namespace: props.namespace, labels },
      replicas,
      select: false,
      podMetadata: { labels, annotations: { [CONFIG_HASH_ANNOTATION]: props.configHash } },
      // Never drop serving capacity during a rollout; one extra pod at a time.
      strategy: kplus.DeploymentStrategy.rollingUpdate({ maxSurge: kplus.PercentOrAbsolute.absolute(1), maxUnavailable: kplus.PercentOrAbsolute.absolute(0) }),
      minReady: Duration.seconds(5),
      progressDeadline: Duration.seconds(600),
      serviceAccount: props.serviceAccount,
      automountServiceAccountToken: false,
      terminationGracePeriod: Duration.seconds(terminationGraceSeconds(route)),
      securityContext: { ensureNonRoot: true, user: NON_ROOT_UID, group: NON_ROOT_UID, fsGroup: NON_ROOT_UID, fsGroupChangePolicy: kplus.FsGroupChangePolicy.ON_ROOT_MISMATCH },
      isolate: false,
      spread: false,
    });
    this.deployment.select(kplus.LabelSelector.of({ labels: selectorLabels(route, environment.name) }));

    const container = this.deployment.addContainer({
      name: 'gateway',
      image: props.image,
      imagePullPolicy: kplus.ImagePullPolicy.IF_NOT_PRESENT,
      args: ['gateway', '--config', `${CONFIG_MOUNT}/${CONFIG_FILE_NAME}`],
      ports: [
        { name: 'http', number: API_PORT },
        { name: 'metrics', number: METRICS_PORT },
      ],
      // Ready only when config and every required key load; never restarted for a provider outage.
      readiness: kplus.Probe.fromHttpGet('/readyz', { port: API_PORT, periodSeconds: Duration.seconds(5), failureThreshold: 2 }),
      liveness: kplus.Probe.fromHttpGet('/livez', { port: API_PORT, periodSeconds: Duration.seconds(10), failureThreshold: 3 }),
      securityContext: { ensureNonRoot: true, user: NON_ROOT_UID, group: NON_ROOT_UID, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, privileged: false },
    });

    container.mount(CONFIG_MOUNT, kplus.Volume.fromConfigMap(this, 'config', props.configMap, { name: 'config' }), { readOnly: true });
    container.mount('/tmp', kplus.Volume.fromEmptyDir(this, 'tmp', 'tmp', { sizeLimit: Size.mebibytes(64) }));
    for (const mount of props.secretMounts) {
      const secret = kplus.Secret.fromSecretName(this, `secret-${mount.volume}`, mount.secretName);
      const volume = kplus.Volume.fromSecret(this, `volume-${mount.volume}`, secret, {
        name: mount.volume,
        items: { [mount.secretKey]: { path: VALUE_FILE } },
        defaultMode: 0o440,
      });
      container.mount(mount.directory, volume, { readOnly: true });
    }

    const api = ApiObject.of(this.deployment);
    const resources = environment.gateway.resources;
    api.addJsonPatch(
      // plus-27 only takes whole CPUs/MiB; the route takes any Kubernetes quantity. The L1 serializer that runs after
      // patches reads Quantity objects, so the values must be Quantities, not strings.
      JsonPatch.add('/spec/template/spec/containers/0/resources', { requests: quantities(resources.requests), limits: quantities(resources.limits) }),
      // plus-27 labels pods with its construct path; it would change with the code's structure, so it goes.
      JsonPatch.remove('/spec/template/metadata/labels/cdk8s.io~1metadata.addr'),
      JsonPatch.add('/spec/template/spec/containers/0/securityContext/capabilities', { drop: ['ALL'] }),
      JsonPatch.add('/spec/template/spec/containers/0/securityContext/seccompProfile', SECCOMP),
      JsonPatch.add('/spec/template/spec/securityContext/seccompProfile', SECCOMP),
    );
    const env = tracingEnv(route, environment);
    if (env.length) api.addJsonPatch(JsonPatch.add('/spec/template/spec/containers/0/env', env));
    if (replicas > 1) {
      const labelSelector = { matchLabels: selectorLabels(route, environment.name) };
      api.addJsonPatch(
        JsonPatch.add('/spec/template/spec/topologySpreadConstraints', [
          { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector },
          { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector },
        ]),
      );
      new kplus.k8s.KubePodDisruptionBudget(this, 'pdb', {
        metadata: { name, namespace: props.namespace, labels },
        spec: { maxUnavailable: kplus.k8s.IntOrString.fromNumber(1), selector: labelSelector },
      });
    }
  }
}
