import { describe, expect, it } from '@jest/globals';
import { loadRoutes } from '../../src/api/files.js';
import { keyMounts, type KeyMount } from '../../src/api/mounts.js';
import { fingerprint } from '../../src/api/names.js';
import { resolveKeys, type ObservedKey } from '../../src/controller/keys.js';

const SECRET_VALUE = 'sk-test-0123456789abcdef0123456789abcdef';

async function production() {
  const { routes } = await loadRoutes(['examples/support-bot.yaml']);
  const route = routes[0]!.route;
  return { route, mounts: keyMounts(route, route.spec.environments.find((e) => e.name === 'production')!) };
}

const present = (value = SECRET_VALUE): ObservedKey => ({ secret: { exists: true, value }, externalSecret: { exists: true, ready: { status: 'True', reason: 'SecretSynced' } } });
const id = { name: 'support-bot', namespace: 'ai' };
const NOW = '2026-11-22T10:00:00.000Z';

describe('resolveKeys', () => {
  it('resolves when every source is present, with fingerprints and never the key', async () => {
    const { mounts } = await production();
    const verdict = resolveKeys(id, 'production', mounts, () => present(), undefined, NOW);
    expect(verdict.resolved).toBe(true);
    expect(verdict.keys).toHaveLength(4);
    for (const key of verdict.keys) {
      expect(key).toMatchObject({ ready: true, fingerprint: fingerprint(SECRET_VALUE), rotatedAt: NOW });
      expect(key.fingerprint).toMatch(/^sha256:[0-9a-f]{12}$/);
    }
    expect(JSON.stringify(verdict)).not.toContain(SECRET_VALUE);
  });

  it('names route, environment, provider, Secret and key when one is missing', async () => {
    const { mounts } = await production();
    const azure = mounts.find((m) => m.provider === 'azure')!;
    const verdict = resolveKeys(id, 'production', mounts, (m) => (m === azure ? { secret: { exists: false }, externalSecret: present().externalSecret } : present()), undefined, NOW);
    expect(verdict.resolved).toBe(false);
    expect(verdict.reason).toBe('KeyMissing');
    expect(verdict.message).toContain('LLMRoute ai/support-bot, environment "production": provider "azure" key source 0: Secret "support-bot-production-azure-key-0" key "apiKey" is missing');
    expect(verdict.message).toContain('The last good config keeps serving');
  });

  it('treats an empty or whitespace value as missing, and says so', async () => {
    const { mounts } = await production();
    const verdict = resolveKeys(id, 'production', mounts, (m) => (m.provider === 'anthropic' ? present('  \n') : present()), undefined, NOW);
    expect(verdict).toMatchObject({ resolved: false, reason: 'KeyEmpty' });
    expect(verdict.message).toContain('key "apiKey" is empty');
  });

  it('reports an ExternalSecret that is not ready with External Secrets Operator\'s reason', async () => {
    const { mounts } = await production();
    const verdict = resolveKeys(id, 'production', mounts, (m) => (m.provider === 'openai' && m.index === 1 ? { secret: { exists: false }, externalSecret: { exists: true, ready: { status: 'False', reason: 'SecretSyncedError', message: 'could not get secret data from provider' } } } : present()), undefined, NOW);
    expect(verdict).toMatchObject({ resolved: false, reason: 'ExternalSecretNotReady' });
    expect(verdict.message).toContain('provider "openai" key source 1: ExternalSecret "support-bot-production-openai-key-1" is not ready (SecretSyncedError: could not get secret data from provider)');
  });

  it('keeps the rotation time while the fingerprint holds, and stamps a new one on rotation', async () => {
    const { mounts } = await production();
    const first = resolveKeys(id, 'production', mounts, () => present(), undefined, '2026-11-01T00:00:00.000Z');
    const same = resolveKeys(id, 'production', mounts, () => present(), first.keys, NOW);
    expect(same.keys.every((k) => k.rotatedAt === '2026-11-01T00:00:00.000Z')).toBe(true);
    const openai0 = (m: KeyMount) => m.provider === 'openai' && m.index === 0;
    const rotated = resolveKeys(id, 'production', mounts, (m) => (openai0(m) ? present('sk-rotated') : present()), same.keys, NOW);
    const key = rotated.keys.find((k) => k.provider === 'openai' && k.source === 0)!;
    expect(key).toMatchObject({ fingerprint: fingerprint('sk-rotated'), rotatedAt: NOW });
    expect(rotated.keys.filter((k) => k.rotatedAt === NOW)).toHaveLength(1);
  });

  it('a secretRef source needs no ExternalSecret', async () => {
    const { routes } = await loadRoutes(['examples/support-bot.yaml']);
    const route = routes[0]!.route;
    const mounts = keyMounts(route, route.spec.environments.find((e) => e.name === 'staging')!);
    const azure = mounts.find((m) => m.provider === 'azure')!;
    expect(azure.externalSecret).toBeUndefined();
    const verdict = resolveKeys(id, 'staging', mounts, (m) => (m === azure ? { secret: { exists: true, value: SECRET_VALUE } } : present()), undefined, NOW);
    expect(verdict.resolved).toBe(true);
  });
});
