/**
 * A small untyped REST client for the API server. client-node's typed serializer silently drops fields it does not
 * know for built-in kinds, so everything the controller writes goes over the wire exactly as rendered. It reuses
 * client-node's KubeConfig for credentials and TLS.
 */
import https from 'node:https';
import http from 'node:http';
import type * as k8s from '@kubernetes/client-node';

export class KubeError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'KubeError';
  }
}

export const isNotFound = (error: unknown) => error instanceof KubeError && error.status === 404;
export const isConflict = (error: unknown) => error instanceof KubeError && error.status === 409;

export interface RequestOptions {
  query?: Record<string, string | undefined>;
  body?: unknown;
  contentType?: string;
  /** Default `application/json`. */
  accept?: string;
}

/** Accept headers asking for metadata only (PartialObjectMetadata): of an object, of a list's items. */
export const METADATA_ONLY = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1';
export const METADATA_LIST_ONLY = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';

/** `loadFromDefault()` falls back to http://localhost:8080 when nothing is configured; that is never what we want. */
export function assertConfigured(kc: k8s.KubeConfig): void {
  const server = kc.getCurrentCluster()?.server;
  if (!server || server === 'http://localhost:8080') {
    throw new Error('no Kubernetes cluster configured: set KUBECONFIG, pass --kubeconfig, or run in a pod with a service account');
  }
}

export class KubeClient {
  private constructor(
    private readonly server: URL,
    private readonly options: https.RequestOptions,
    private readonly agent: http.Agent,
  ) {}

  static async create(kc: k8s.KubeConfig): Promise<KubeClient> {
    assertConfigured(kc);
    const server = new URL(kc.getCurrentCluster()!.server);
    const options: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(options);
    const agent = server.protocol === 'https:' ? new https.Agent({ keepAlive: true, ca: options.ca, cert: options.cert, key: options.key, rejectUnauthorized: options.rejectUnauthorized }) : new http.Agent({ keepAlive: true });
    return new KubeClient(server, options, agent);
  }

  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const url = new URL(path, this.server);
    for (const [key, value] of Object.entries(options.query ?? {})) if (value !== undefined) url.searchParams.set(key, value);
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers: Record<string, string> = { accept: options.accept ?? 'application/json', ...(this.options.headers as Record<string, string> | undefined) };
    if (body !== undefined) {
      headers['content-type'] = options.contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    const transport = url.protocol === 'https:' ? https : http;
    return new Promise<T>((resolve, reject) => {
      const request = transport.request(url, { method, headers, agent: this.agent, auth: this.options.auth, timeout: 30_000 }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            resolve((text ? JSON.parse(text) : undefined) as T);
            return;
          }
          let parsed: { reason?: string; message?: string } = {};
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = { message: text };
          }
          reject(new KubeError(status, parsed.reason ?? 'Unknown', `${method} ${url.pathname}: ${status} ${parsed.message ?? text}`));
        });
        response.on('error', reject);
      });
      request.on('timeout', () => request.destroy(new Error(`${method} ${url.pathname}: timed out after 30s`)));
      request.on('error', reject);
      if (body !== undefined) request.write(body);
      request.end();
    });
  }

  get<T = unknown>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  /** Server-side apply: the object as rendered, owned by `fieldManager`; the answer in `accept`'s form. */
  apply<T = unknown>(path: string, object: unknown, fieldManager: string, accept?: string): Promise<T> {
    return this.request<T>('PATCH', path, { body: object, contentType: 'application/apply-patch+yaml', query: { fieldManager }, ...(accept ? { accept } : {}) });
  }

  mergePatch<T = unknown>(path: string, patch: unknown): Promise<T> {
    return this.request<T>('PATCH', path, { body: patch, contentType: 'application/merge-patch+json' });
  }

  delete(path: string): Promise<unknown> {
    return this.request('DELETE', path, { body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' } });
  }

  list<T = unknown>(path: string, labelSelector?: string, accept?: string): Promise<{ items: T[] }> {
    return this.request('GET', path, { query: { labelSelector }, ...(accept ? { accept } : {}) });
  }

  close(): void {
    this.agent.destroy();
  }
}
