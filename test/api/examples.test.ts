import { describe, expect, it } from '@jest/globals';
import { loadRoutes } from '../../src/api/files.js';

describe('the committed examples', () => {
  it('are accepted exactly as written, without warnings beyond the documented ones', async () => {
    const result = await loadRoutes(['examples/support-bot.yaml', 'examples/quickstart.yaml']);
    expect(result.findings).toEqual([]);
    expect(result.routes.map((r) => r.route.metadata.name)).toEqual(['support-bot', 'quickstart']);
  });

  it('get defaults applied', async () => {
    const { routes } = await loadRoutes(['examples/quickstart.yaml']);
    const spec = routes[0]!.route.spec;
    expect(spec.retry).toEqual({ maxAttempts: 3, baseDelayMs: 250, maxDelayMs: 8000, budgetPercent: 20 });
    expect(spec.models[0]!.timeouts).toEqual({ firstTokenSeconds: 30, idleSeconds: 20, totalSeconds: 120 });
    expect(spec.environments[0]!.gateway.replicas).toBe(2);
    expect(spec.providers[0]!.mock).toEqual({ latencyMs: 150, failureRatio: 0.3, failureKind: 'server-error' });
  });
});
