/**
 * Where the gateway finds its config and secrets. The compiler writes these paths into the compiled config and the
 * renderer mounts Secrets at them, so both read the layout from here.
 *
 * Secrets are mounted as whole directories, never with `subPath`: the kubelet refreshes directory mounts when a Secret
 * changes but never a `subPath` mount, and a rotated key must reach a running gateway without a restart.
 */
import { dnsName } from './names.js';
import type { Environment, ExternalSecretSourceT, LLMRoute } from './schema.js';

export const CONFIG_MOUNT = '/etc/llmroute';
export const CONFIG_FILE_NAME = 'gateway.json';
export const SECRETS_ROOT = '/var/run/llmroute';
/** The data key under which rendered ExternalSecrets store a provider key. */
export const EXTERNAL_SECRET_KEY = 'apiKey';
/** The file name every mounted secret value gets inside its directory. */
export const VALUE_FILE = 'value';

export interface SecretMount {
  /** Pod volume name. */
  volume: string;
  secretName: string;
  secretKey: string;
  /** Directory the volume is mounted at. */
  directory: string;
  /** The file inside it that holds the value. */
  file: string;
}

export interface KeyMount extends SecretMount {
  provider: string;
  index: number;
  /** Set when llmroute renders an ExternalSecret that produces `secretName`. */
  externalSecret?: ExternalSecretSourceT;
}

function mount(volume: string, secretName: string, secretKey: string, directory: string, root: string): SecretMount {
  const dir = `${root}${directory}`;
  return { volume, secretName, secretKey, directory: dir, file: `${dir}/${VALUE_FILE}` };
}

/** The name of the Secret an ExternalSecret key source produces (and of the ExternalSecret itself). */
export function externalSecretName(route: string, environment: string, provider: string, index: number): string {
  return dnsName([route, environment, provider, 'key', index], 253);
}

/** Every provider key of an environment, in the order of the route's providers and each provider's sources. */
export function keyMounts(route: LLMRoute, environment: Environment, root = SECRETS_ROOT): KeyMount[] {
  return route.spec.providers.flatMap((provider) =>
    (environment.keys?.[provider.name] ?? []).map((source, index): KeyMount => {
      const volume = dnsName(['key', provider.name, index]);
      const directory = `/keys/${provider.name}/${index}`;
      if (source.externalSecret) {
        const name = externalSecretName(route.metadata.name, environment.name, provider.name, index);
        return { ...mount(volume, name, EXTERNAL_SECRET_KEY, directory, root), provider: provider.name, index, externalSecret: source.externalSecret };
      }
      const ref = source.secretRef as { name: string; key: string };
      return { ...mount(volume, ref.name, ref.key, directory, root), provider: provider.name, index };
    }),
  );
}

/** The token Secret of every client, shared by all environments. */
export function clientMounts(route: LLMRoute, root = SECRETS_ROOT): (SecretMount & { client: string })[] {
  return (route.spec.clients ?? []).map((client) => ({
    ...mount(dnsName(['client', client.name]), client.tokenSecretRef.name, client.tokenSecretRef.key, `/clients/${client.name}`, root),
    client: client.name,
  }));
}

export function redisMount(environment: Environment, root = SECRETS_ROOT): SecretMount | undefined {
  const ref = environment.gateway.redis?.urlSecretRef;
  return ref ? mount('redis-url', ref.name, ref.key, '/redis', root) : undefined;
}
