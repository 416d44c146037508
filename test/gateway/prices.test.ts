import { describe, expect, it } from '@jest/globals';
import { BUILTIN_PRICES, MOCK_PRICE, priceOf } from '../../src/gateway/prices.js';

describe('priceOf', () => {
  it('finds dated OpenAI and Anthropic snapshots in the built-in table', () => {
    expect(priceOf('gpt-4o-2024-05-13', {})).toEqual({ price: { input: 5, output: 15 }, source: 'builtin' });
    expect(priceOf('gpt-4o-2024-08-06', {})).toEqual({ price: { input: 2.5, output: 10 }, source: 'builtin' });
    expect(priceOf('gpt-4o-mini-2024-07-18', {})?.price).toEqual({ input: 0.15, output: 0.6 });
    expect(priceOf('gpt-4.1-nano-2025-04-14', {})?.price).toEqual({ input: 0.1, output: 0.4 });
    expect(priceOf('o1-2024-12-17', {})?.price).toEqual({ input: 15, output: 60 });
    expect(priceOf('claude-sonnet-4-20250514', {})?.price).toEqual({ input: 3, output: 15 });
    expect(priceOf('claude-opus-4-20250514', {})?.price).toEqual({ input: 15, output: 75 });
    expect(priceOf('claude-3-haiku-20240307', {})?.price).toEqual({ input: 0.25, output: 1.25 });
  });

  it('holds only dated snapshots, apart from the undated embedding models', () => {
    const undated = Object.keys(BUILTIN_PRICES).filter((model) => !/(-\d{4}-\d{2}-\d{2}|-\d{8})$/.test(model));
    expect(undated).toEqual(['text-embedding-3-small', 'text-embedding-3-large']);
    expect(priceOf('text-embedding-3-small', {})?.price).toEqual({ input: 0.02, output: 0 });
  });

  it('prices Azure OpenAI like OpenAI: by the snapshot the step names, not by the deployment serving it', () => {
    // An azure-openai step asks for an OpenAI snapshot; `deployments` maps it to the Azure deployment in the URL only.
    const azure = { deployments: { 'gpt-4o-2024-11-20': 'prod-gpt4o' } };
    const [[snapshot, deployment]] = Object.entries(azure.deployments) as [[string, string]];
    expect(priceOf(snapshot, {})).toEqual({ price: { input: 2.5, output: 10 }, source: 'builtin' });
    expect(priceOf(deployment, {})).toBeUndefined();
    // An Azure-specific price (regional, negotiated) is a route override like any other.
    expect(priceOf(snapshot, { [snapshot]: { input: 2.75, output: 11 } })?.source).toBe('route');
  });

  it("lets the route's spec.prices override the table, and price models the table does not know", () => {
    const overrides = { 'gpt-4o-2024-08-06': { input: 2.75, output: 11 }, 'llama-3.1-70b': { input: 0.5, output: 0.5 } };
    expect(priceOf('gpt-4o-2024-08-06', overrides)).toEqual({ price: { input: 2.75, output: 11 }, source: 'route' });
    expect(priceOf('llama-3.1-70b', overrides)).toEqual({ price: { input: 0.5, output: 0.5 }, source: 'route' });
    expect(priceOf('mock-2025-01-01', { 'mock-2025-01-01': { input: 0, output: 0 } })).toEqual({ price: { input: 0, output: 0 }, source: 'route' });
  });

  it('prices mock models at a small documented amount, so budgets can be shown locally', () => {
    expect(MOCK_PRICE).toEqual({ input: 1, output: 2 });
    expect(priceOf('mock-2025-01-01', {})).toEqual({ price: MOCK_PRICE, source: 'builtin' });
  });

  it('returns undefined, never zero, for an unknown price: floating aliases, unknown models, prototype names', () => {
    for (const model of ['gpt-4o', 'claude-3-5-sonnet-latest', 'gpt-5-2030-01-01', 'llama-3.1-70b', 'constructor', 'toString', '']) {
      expect(priceOf(model, {})).toBeUndefined();
    }
  });
});
