/**
 * What the controller keeps of the objects it owns, and when it applies one again.
 *
 * The caches of owned objects (one watch per owned kind) hold a stripped copy of each, as controller-runtime's
 * TransformStripManagedFields and metadata-only caches do: the name, labels and owner references that pruning reads,
 * the resourceVersion that recognises our own writes coming back, the Deployment's replicas and status and the
 * ExternalSecret's annotations and status (the reconciler reads them), and a `version` that changes whenever anyone
 * changes what the controller applied. Kinds whose status others update (WITH_STATUS) are watched in full and their
 * version is a hash of everything but status; the others are watched as metadata only (PartialObjectMetadata: a
 * ConfigMap's data never reaches the controller, nor its memory) and their version is the resourceVersion.
 *
 * Server-side apply of an unchanged object writes nothing, but it still costs the API server a full apply (decode,
 * merge, compare, encode) and was most of its work at scale. So the controller remembers, per object, the hash of what
 * it applied and the version the API server answered, and applies an object again only when its rendering changed,
 * when it is gone, or when someone changed it since. The memory is per process and per leadership term: a new leader
 * applies everything once, which also repairs whatever changed while no one was watching.
 */
import type * as k8s from '@kubernetes/client-node';
import { shortHash } from '../api/names.js';
import { ROUTE_LABEL } from '../render/labels.js';
import type { InformerEvent } from './informer.js';

export interface OwnedObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: k8s.V1OwnerReference[];
  };
  spec?: { replicas?: number };
  status?: OwnedStatus;
  /** Changes when anyone changes the object, except its status: see the module comment. */
  version: string;
}

/** The parts of a Deployment's and an ExternalSecret's status the reconciler reads. */
export interface OwnedStatus {
  observedGeneration?: number;
  replicas?: number;
  updatedReplicas?: number;
  readyReplicas?: number;
  availableReplicas?: number;
  conditions?: { type: string; status: string; reason?: string; message?: string }[];
}

interface RawObject {
  apiVersion: string;
  kind: string;
  metadata: OwnedObject['metadata'] & { uid?: string; managedFields?: unknown; creationTimestamp?: unknown; selfLink?: unknown };
  spec?: { replicas?: number };
  status?: OwnedStatus;
  [field: string]: unknown;
}

/**
 * Kinds whose status another controller updates on its own (the Deployment and disruption controllers, External
 * Secrets Operator). Watching them as metadata only would make every status update look like a change to re-apply.
 */
export const WITH_STATUS = new Set(['Deployment', 'ExternalSecret', 'PodDisruptionBudget']);
/** Kinds whose status and annotations the reconciler reads. */
const KEEPS_STATUS = new Set(['Deployment', 'ExternalSecret']);
const KEEPS_ANNOTATIONS = new Set(['ExternalSecret']);
/** The Deployment controller's own bookkeeping (the revision): it changes without anyone changing what we applied. */
const SERVER_ANNOTATION = /^deployment\.kubernetes\.io\//;

/**
 * Hashes of plain JSON text, not of canonical JSON: the API server writes an object's fields in a fixed order (Go
 * structs in declaration order, maps sorted), and the renderer is deterministic, so equal content gives equal text.
 * Were it ever not so, the cost would be one needless apply, never a missed one; canonical JSON cost the controller
 * more CPU than anything else it did with a watch event.
 */
const hashOf = (value: unknown) => shortHash(JSON.stringify(value), 16);

function contentHash(raw: RawObject): string {
  // apiVersion and kind in a fixed place: the API server writes kind first, the informer sets them on list items.
  const { apiVersion, kind, status: _status, metadata, ...rest } = raw;
  const { resourceVersion: _rv, managedFields: _mf, generation: _gen, uid: _uid, creationTimestamp: _ct, selfLink: _sl, annotations, ...meta } = metadata;
  const kept = annotations && Object.fromEntries(Object.entries(annotations).filter(([key]) => !SERVER_ANNOTATION.test(key)));
  return hashOf({ apiVersion, kind, ...rest, metadata: { ...meta, ...(kept ? { annotations: kept } : {}) } });
}

/**
 * The cache transform of owned objects, full or metadata only (WITH_STATUS); also applied to apply answers, which are
 * asked for in the same form, so that both give the same version. List items and metadata-only objects do not carry
 * the object's apiVersion and kind: the caller sets them.
 */
export function stripOwned(object: unknown): OwnedObject {
  const raw = object as RawObject;
  const { name, namespace, resourceVersion, generation, labels, annotations, ownerReferences } = raw.metadata;
  const status = KEEPS_STATUS.has(raw.kind);
  return {
    apiVersion: raw.apiVersion,
    kind: raw.kind,
    metadata: {
      name,
      ...(namespace ? { namespace } : {}),
      ...(resourceVersion ? { resourceVersion } : {}),
      ...(generation !== undefined ? { generation } : {}),
      ...(labels ? { labels } : {}),
      ...(annotations && KEEPS_ANNOTATIONS.has(raw.kind) ? { annotations } : {}),
      ...(ownerReferences ? { ownerReferences } : {}),
    },
    ...(raw.kind === 'Deployment' && raw.spec ? { spec: { replicas: raw.spec.replicas } } : {}),
    ...(status && raw.status ? { status: raw.status } : {}),
    version: WITH_STATUS.has(raw.kind) ? contentHash(raw) : (resourceVersion ?? ''),
  };
}

/** Identifies a rendered object in the records. */
export const renderedHash = hashOf;

export interface AppliedRecord {
  /** `renderedHash` of what was applied. */
  renderedHash: string;
  /** `version` of the API server's answer. */
  version: string;
  /** The answer's resourceVersion: a watch event with it is our own write coming back. */
  resourceVersion?: string;
  /** When (ms since the epoch). */
  at: number;
}

/**
 * How long an object applied by this process may be missing from its cache before it counts as deleted: the watch
 * delivers it a moment after the apply answers. A deletion seen by the watch drops the record at once (`forget`).
 */
export const UNSEEN_GRACE_MS = 30_000;

export type ApplyReason = 'NotApplied' | 'RenderChanged' | 'Missing' | 'Changed' | 'UpToDate';

export interface ApplyDecision {
  apply: boolean;
  reason: ApplyReason;
  message: string;
}

/** Whether to apply a rendered object, from what this process applied last and what the cache holds now. */
export function decideApply(rendered: string, record: AppliedRecord | undefined, live: OwnedObject | undefined, now: number): ApplyDecision {
  if (!record) return { apply: true, reason: 'NotApplied', message: 'not applied during this leadership term yet' };
  if (record.renderedHash !== rendered) return { apply: true, reason: 'RenderChanged', message: 'the rendered object changed' };
  if (!live) {
    return now - record.at < UNSEEN_GRACE_MS
      ? { apply: false, reason: 'UpToDate', message: 'applied moments ago; the watch has not delivered it yet' }
      : { apply: true, reason: 'Missing', message: 'not in the cache: deleted' };
  }
  if (live.version !== record.version) return { apply: true, reason: 'Changed', message: 'changed since it was applied' };
  return { apply: false, reason: 'UpToDate', message: 'as applied' };
}

/** A render without its objects: enough to decide what to apply and what to prune. */
export interface RenderSummary {
  /** Hash of the render's inputs: rendering is pure, so the same inputs render the same objects. */
  inputs: string;
  configHash: string;
  objects: { apiVersion: string; kind: string; name: string; hash: string }[];
}

interface RouteMemory {
  /** By `Kind/name`. */
  objects: Map<string, AppliedRecord>;
  /** By environment. */
  renders: Map<string, RenderSummary>;
}

/** What this process applied, and the renders it applied from, per route (`namespace/name`). */
export class AppliedObjects {
  private readonly routes = new Map<string, RouteMemory>();

  get(route: string, object: string): AppliedRecord | undefined {
    return this.routes.get(route)?.objects.get(object);
  }

  set(route: string, object: string, record: AppliedRecord): void {
    this.memory(route).objects.set(object, record);
  }

  /** The object is gone: the next reconcile applies it again. */
  forget(route: string, object: string): void {
    this.routes.get(route)?.objects.delete(object);
  }

  forgetRoute(route: string): void {
    this.routes.delete(route);
  }

  /** Whether a watched version of the object is the one our last apply produced (nothing new in it for us). */
  isOwnWrite(route: string, object: string, resourceVersion: string | undefined): boolean {
    return resourceVersion !== undefined && this.get(route, object)?.resourceVersion === resourceVersion;
  }

  rendering(route: string, environment: string): RenderSummary | undefined {
    return this.routes.get(route)?.renders.get(environment);
  }

  setRendering(route: string, environment: string, summary: RenderSummary): void {
    this.memory(route).renders.set(environment, summary);
  }

  private memory(route: string): RouteMemory {
    const memory = this.routes.get(route) ?? { objects: new Map(), renders: new Map() };
    this.routes.set(route, memory);
    return memory;
  }
}

/**
 * The cached owned objects by route (`namespace/name`, from the route label), fed by the informers' events: a pass
 * looks only at its own route's objects rather than at every object of the namespace.
 */
export class OwnedIndex {
  private readonly byRoute = new Map<string, Map<string, OwnedObject>>();
  /** `Kind/namespace/name` → route key. */
  private readonly routeOf = new Map<string, string>();

  update(type: InformerEvent, object: OwnedObject): void {
    const { namespace, name, labels } = object.metadata;
    const id = `${object.kind}/${namespace}/${name}`;
    const before = this.routeOf.get(id);
    if (before !== undefined) {
      const objects = this.byRoute.get(before);
      objects?.delete(id);
      if (objects?.size === 0) this.byRoute.delete(before);
      this.routeOf.delete(id);
    }
    if (type === 'delete') return;
    const route = `${namespace}/${labels?.[ROUTE_LABEL]}`;
    const objects = this.byRoute.get(route) ?? new Map<string, OwnedObject>();
    objects.set(id, object);
    this.byRoute.set(route, objects);
    this.routeOf.set(id, route);
  }

  get(kind: string, namespace: string, name: string): OwnedObject | undefined {
    const id = `${kind}/${namespace}/${name}`;
    const route = this.routeOf.get(id);
    return route === undefined ? undefined : this.byRoute.get(route)?.get(id);
  }

  /** The objects labelled with this route (whoever owns them). */
  ofRoute(namespace: string, name: string): OwnedObject[] {
    return [...(this.byRoute.get(`${namespace}/${name}`)?.values() ?? [])];
  }
}
