/**
 * The adapter for each provider type. `mock` is not here: the in-process fault-injecting provider is built
 * separately and registers alongside these.
 */
import type { ProviderType } from '../../api/schema.js';
import type { ProviderAdapter } from './adapter.js';
import { anthropic } from './anthropic.js';
import { azureOpenAI } from './azure-openai.js';
import { openai } from './openai.js';
import { openAICompatible } from './openai-compatible.js';

export const ADAPTERS: Readonly<Record<Exclude<ProviderType, 'mock'>, ProviderAdapter>> = {
  openai,
  'azure-openai': azureOpenAI,
  anthropic,
  'openai-compatible': openAICompatible,
};

/** The adapter for a provider type, or undefined for one this registry does not hold (`mock`). */
export function adapterFor(type: ProviderType): ProviderAdapter | undefined {
  return type === 'mock' ? undefined : ADAPTERS[type];
}
