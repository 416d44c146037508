/**
 * Kubernetes Events for transitions a person should see in `kubectl describe llmr`: keys missing and found, invalid
 * specs, pruning, rollout steps and aborts. The reconciler records them on transitions only, so they do not repeat.
 */
import { randomUUID } from 'node:crypto';
import type { KubeClient } from './kube-client.js';
import type { EventRecorder, RouteObject } from './reconcile.js';
import { resourceByKind, resourcePath } from './resources.js';

const COMPONENT = 'llmroute-controller';

export class KubeEventRecorder implements EventRecorder {
  constructor(
    private readonly client: KubeClient,
    private readonly host: string,
    private readonly log: (level: 'warn', message: string) => void,
  ) {}

  async record(route: RouteObject, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const now = new Date().toISOString();
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${route.metadata.name}.${randomUUID().slice(0, 8)}`, namespace: route.metadata.namespace },
      involvedObject: { apiVersion: route.apiVersion, kind: route.kind, name: route.metadata.name, namespace: route.metadata.namespace, uid: route.metadata.uid },
      type,
      reason,
      message: message.slice(0, 1024),
      source: { component: COMPONENT, host: this.host },
      reportingComponent: COMPONENT,
      reportingInstance: this.host,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    // An event that cannot be recorded must never fail a reconcile.
    await this.client.request('POST', resourcePath(resourceByKind('Event'), route.metadata.namespace), { body: event }).catch((error: unknown) => this.log('warn', `could not record event ${reason}: ${(error as Error).message}`));
  }
}
