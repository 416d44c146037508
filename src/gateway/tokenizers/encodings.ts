/**
 * OpenAI's BPE encodings (gpt-tokenizer, pure JavaScript), imported on first use: o200k_base costs 0.3–0.6 s and
 * about 20 MB of heap to load, cl100k_base a third of that, and a gateway whose models need neither (self-hosted,
 * mock) never pays for them. The gateway loads what its config needs before it serves (`loadEncodings`); a request
 * that still finds one loading waits for it.
 */
import type { GatewayConfig } from '../../api/gateway-config.js';
import { encodingsFor, type Encoding } from './families.js';

export type TokenCounter = (text: string) => number;

interface EncodingModule {
  countTokens(text: string, options: { disallowedSpecial: Set<string> }): number;
}

const IMPORTS: Record<Encoding, () => Promise<EncodingModule>> = {
  o200k_base: () => import('gpt-tokenizer/encoding/o200k_base'),
  cl100k_base: () => import('gpt-tokenizer/encoding/cl100k_base'),
};

/**
 * A prompt containing `<|endoftext|>` or another special token's text is text to the provider, not a control
 * token; the library's default would throw on it.
 */
const AS_TEXT = { disallowedSpecial: new Set<string>() };

const loaded = new Map<Encoding, TokenCounter>();
const loading = new Map<Encoding, Promise<TokenCounter>>();

export function tokenCounter(encoding: Encoding): TokenCounter | Promise<TokenCounter> {
  const ready = loaded.get(encoding);
  if (ready) return ready;
  let pending = loading.get(encoding);
  if (!pending) {
    pending = IMPORTS[encoding]().then((module) => {
      const count: TokenCounter = (text) => module.countTokens(text, AS_TEXT);
      loaded.set(encoding, count);
      return count;
    });
    loading.set(encoding, pending);
  }
  return pending;
}

/** Loads every encoding the config's models (and their flag variants) count with. */
export async function loadEncodings(config: Pick<GatewayConfig, 'providers' | 'models' | 'flags' | 'budget' | 'clients'>): Promise<void> {
  await Promise.all([...encodingsFor(config)].map((encoding) => tokenCounter(encoding)));
}
