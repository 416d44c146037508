/**
 * What a model snapshot costs, in USD per million input and output tokens. A route's `spec.prices` overrides the
 * built-in table entry by entry: negotiated discounts, Azure's regional prices, self-hosted models with a cost you
 * want to charge back, or a snapshot newer than this table.
 *
 * The table holds dated snapshots only. An undated alias (`gpt-4o`, `claude-3-5-sonnet-latest`) is deliberately
 * unknown: the provider may move it to a snapshot with another price, which is the same reason routes pin dates.
 * An unknown price is `undefined`, never zero: the caller warns and counts it, because a silent zero would let a
 * budget pass traffic it cannot see.
 */
import type { z } from 'zod';
import type { Price as PriceSchema } from '../api/schema.js';

export type Price = z.output<typeof PriceSchema>;

export interface PriceLookup {
  price: Price;
  source: 'route' | 'builtin';
}

/**
 * The providers' published list prices (standard tier, no batch or cached-input discounts) as of 2025-06-01.
 * Azure OpenAI sends the same snapshot names, so it is priced like OpenAI unless a route overrides it. Cached input
 * is billed lower by both providers; charging it at the full input price overstates spend, which is the safe
 * direction for a budget.
 */
export const BUILTIN_PRICES: Readonly<Record<string, Price>> = {
  // OpenAI
  'gpt-4o-2024-05-13': { input: 5, output: 15 },
  'gpt-4o-2024-08-06': { input: 2.5, output: 10 },
  'gpt-4o-2024-11-20': { input: 2.5, output: 10 },
  'gpt-4o-mini-2024-07-18': { input: 0.15, output: 0.6 },
  'gpt-4.1-2025-04-14': { input: 2, output: 8 },
  'gpt-4.1-mini-2025-04-14': { input: 0.4, output: 1.6 },
  'gpt-4.1-nano-2025-04-14': { input: 0.1, output: 0.4 },
  'o3-mini-2025-01-31': { input: 1.1, output: 4.4 },
  'o1-2024-12-17': { input: 15, output: 60 },
  // Embedding models have no output tokens and, at OpenAI, no dated snapshots.
  'text-embedding-3-small': { input: 0.02, output: 0 },
  'text-embedding-3-large': { input: 0.13, output: 0 },
  // Anthropic
  'claude-3-5-sonnet-20241022': { input: 3, output: 15 },
  'claude-3-5-haiku-20241022': { input: 0.8, output: 4 },
  'claude-3-7-sonnet-20250219': { input: 3, output: 15 },
  'claude-sonnet-4-20250514': { input: 3, output: 15 },
  'claude-opus-4-20250514': { input: 15, output: 75 },
  'claude-3-haiku-20240307': { input: 0.25, output: 1.25 },
};

/**
 * Models of the built-in `mock` provider (`mock-*`) cost $1 per million input and $2 per million output tokens:
 * nothing real is spent, but a budget can be seen filling up and running out in a local demo.
 */
export const MOCK_PRICE: Price = { input: 1, output: 2 };
const MOCK_PREFIX = 'mock-';

/** The price of `model`: the route's override, else the built-in table, else undefined (the caller warns). */
export function priceOf(model: string, routeOverrides: Readonly<Record<string, Price>>): PriceLookup | undefined {
  // Own properties only: a model named `constructor` must not find Object.prototype's.
  if (Object.hasOwn(routeOverrides, model)) return { price: routeOverrides[model] as Price, source: 'route' };
  if (Object.hasOwn(BUILTIN_PRICES, model)) return { price: BUILTIN_PRICES[model] as Price, source: 'builtin' };
  if (model.startsWith(MOCK_PREFIX)) return { price: MOCK_PRICE, source: 'builtin' };
  return undefined;
}
