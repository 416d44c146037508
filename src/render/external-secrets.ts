/** One ExternalSecret (external-secrets.io/v1) per `externalSecret` key source; each produces the Secret the gateway mounts. */
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { EXTERNAL_SECRET_KEY, type KeyMount } from '../api/mounts.js';
import type { LLMRoute } from '../api/schema.js';
import { commonLabels } from './labels.js';

export interface ExternalSecretsProps {
  route: LLMRoute;
  environment: string;
  namespace?: string;
  keys: KeyMount[];
}

export class ExternalSecrets extends Construct {
  constructor(scope: Construct, id: string, { route, environment, namespace, keys }: ExternalSecretsProps) {
    super(scope, id);
    const labels = commonLabels(route, environment, 'provider-key');
    for (const key of keys) {
      const source = key.externalSecret;
      if (!source) continue;
      new ApiObject(this, key.secretName, {
        apiVersion: 'external-secrets.io/v1',
        kind: 'ExternalSecret',
        metadata: { name: key.secretName, namespace, labels: { ...labels, 'llmroute.dev/provider': key.provider } },
        spec: {
          refreshInterval: source.refreshInterval,
          secretStoreRef: { name: source.storeRef.name, kind: source.storeRef.kind },
          target: {
            name: key.secretName,
            // The ExternalSecret owns its Secret: deleting the environment deletes the key copy too.
            creationPolicy: 'Owner',
            deletionPolicy: 'Delete',
            template: { metadata: { labels: { ...labels, 'llmroute.dev/provider': key.provider } } },
          },
          data: [
            {
              secretKey: EXTERNAL_SECRET_KEY,
              remoteRef: {
                key: source.remoteRef.key,
                ...(source.remoteRef.property ? { property: source.remoteRef.property } : {}),
                ...(source.remoteRef.version ? { version: source.remoteRef.version } : {}),
              },
            },
          ],
        },
      });
    }
  }
}
