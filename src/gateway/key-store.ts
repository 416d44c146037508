/**
 * Provider keys, read from files (mounted Secrets) and re-read when they change, so a rotated key takes effect
 * without a restart and without dropping requests: a request in flight keeps the key it started with.
 * Several keys per provider are used in order; a key a provider rejects (401) is set aside until its file changes.
 * Keys appear in logs only as fingerprints.
 */
import { readFile } from 'node:fs/promises';
import type { CompiledProvider } from '../api/gateway-config.js';
import { fingerprint } from '../api/names.js';

interface KeyFile {
  path: string;
  value: string | undefined;
  /** Why the file gives no key, for readiness messages. */
  problem?: string;
  setAside?: string;
}

export interface KeyStoreOptions {
  environment: string;
  log: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
  onReload?: (provider: string, outcome: 'changed' | 'missing') => void;
  /** A provider rejected a key; `fingerprint` identifies it without revealing it. */
  onSetAside?: (provider: string, fingerprint: string) => void;
}

export class KeyStore {
  private files = new Map<string, KeyFile[]>();
  private providers: CompiledProvider[] = [];

  constructor(private readonly options: KeyStoreOptions) {}

  /** Loads the keys of a (new) config. Files already known keep their state; set-aside marks survive. */
  async load(providers: readonly CompiledProvider[]): Promise<void> {
    this.providers = [...providers];
    const next = new Map<string, KeyFile[]>();
    for (const provider of providers) {
      next.set(provider.name, await Promise.all(provider.keyFiles.map((path) => this.read(path, this.files.get(provider.name)?.find((f) => f.path === path)))));
    }
    this.files = next;
  }

  /** Re-reads every key file; call on a timer. Only changed files are logged. */
  async refresh(): Promise<void> {
    await this.load(this.providers);
  }

  private async read(path: string, before: KeyFile | undefined): Promise<KeyFile> {
    let value: string | undefined;
    let problem: string | undefined;
    try {
      value = (await readFile(path, 'utf8')).trim();
      if (value === '') problem = `${path} is empty`;
    } catch (error) {
      problem = `${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`;
    }
    const usable = problem ? undefined : value;
    if (before && before.value !== usable) {
      const provider = this.providers.find((p) => p.keyFiles.includes(path))?.name ?? '?';
      this.options.log(usable ? 'info' : 'warn', usable ? 'key file changed; new requests use the new key' : 'key file no longer gives a key', {
        provider,
        file: path,
        ...(before.value ? { previous: fingerprint(before.value) } : {}),
        ...(usable ? { fingerprint: fingerprint(usable) } : { problem }),
      });
      this.options.onReload?.(provider, usable ? 'changed' : 'missing');
    }
    // A new key clears the set-aside mark: the rotation is what fixes a rejected key.
    const setAside = before && before.value === usable ? before.setAside : undefined;
    return { path, value: usable, ...(problem ? { problem } : {}), ...(setAside ? { setAside } : {}) };
  }

  /** Usable keys of a provider, in order of preference. */
  keys(provider: string): string[] {
    return (this.files.get(provider) ?? []).filter((f) => f.value !== undefined && !f.setAside).map((f) => f.value as string);
  }

  /** A provider answered 401/403 for this key: skip it until its file changes. */
  setAside(provider: string, key: string, reason: string): void {
    const file = this.files.get(provider)?.find((f) => f.value === key);
    if (!file || file.setAside) return;
    file.setAside = reason;
    this.options.onSetAside?.(provider, fingerprint(key));
    this.options.log('warn', 'key rejected by the provider; set aside until its file changes', { provider, file: file.path, fingerprint: fingerprint(key), reason });
  }

  /** Why the gateway cannot serve: every provider that needs a key has at least one. Empty when ready. */
  problems(): string[] {
    return this.providers
      .filter((p) => p.keyRequired)
      .flatMap((p) => {
        const files = this.files.get(p.name) ?? [];
        if (files.some((f) => f.value !== undefined)) return [];
        const where = files.length ? files.map((f) => f.problem ?? f.path).join('; ') : 'no key file is configured';
        return [`no key for provider "${p.name}" (${p.type}) in environment "${this.options.environment}": ${where}`];
      });
  }
}
