/**
 * Which tokenizer counts a model's prompt, from the provider's type and the model it is asked for.
 *
 * - OpenAI and Azure OpenAI: the model's own encoding, so the count is exact. Azure names the model behind each
 *   deployment in the route (`deployments` maps model → deployment), so both count alike. An OpenAI model this table
 *   does not know is counted with o200k_base, the encoding of every OpenAI family since gpt-4o, as an estimate.
 * - Anthropic: Claude 3 and later have no public tokenizer (`@anthropic-ai/tokenizer` is Claude 2's, and Anthropic
 *   says it is inaccurate for newer models). A BPE count follows the text's kind (prose, code, CJK, whitespace) far
 *   better than a characters ratio, so the estimate is o200k_base's count scaled by a factor that errs toward
 *   over-counting (docs/gateway.md, "Token counting", gives the evidence and the expected error).
 * - Self-hosted (openai-compatible) and mock models: their tokenizers are unknown here; UTF-8 bytes over four.
 */
import type { CompiledModel, GatewayConfig } from '../../api/gateway-config.js';
import type { ProviderType } from '../../api/schema.js';
import { applyFlags } from '../flags.js';

export type Encoding = 'o200k_base' | 'cl100k_base';

export interface Counting {
  /** The encoding the prompt's text goes through; none: the byte estimate. */
  encoding?: Encoding;
  /** The encoding is the model's own. Otherwise every count is an estimate. */
  exact: boolean;
  /** Scales the count (and the byte estimate) for models whose tokenizer is not public. */
  factor: number;
  /** The cookbook's fixed tokens at the start of each tool definition, which differ by encoding. */
  functionInit: number;
  /** Tokens the provider adds to the prompt when the request defines tools. */
  toolsPrompt: number;
  /** How the count is made, for the client's error message. */
  method: string;
}

/** gpt-4o, gpt-4.1, gpt-4.5, gpt-5.x, o1, o3, o4 and their dated, mini and fine-tuned variants. */
const O200K = /^(?:chatgpt-4o|gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|o4)(?:[-.]|$)/;
/** gpt-4 (and -turbo, -32k), gpt-3.5-turbo (Azure spells it gpt-35-turbo) and the embeddings models. */
const CL100K = /^(?:gpt-4|gpt-3\.5-turbo|gpt-35-turbo|text-embedding-ada-002|text-embedding-3)(?:-|$)/;

/**
 * Over o200k_base's count for Claude. Reported comparisons (Anthropic's count_tokens against tiktoken) put Claude
 * up to 4.6 at about 1.05–1.2× o200k_base for English prose, and Anthropic documents Claude Opus 4.7's tokenizer
 * at 1.0–1.35× its predecessors, more for code. 1.3 over-counts older Claude models, holding budget and refusing
 * early rather than spending over a cap, and is close for Opus 4.7's prose.
 */
export const CLAUDE_FACTOR = 1.3;
/** Anthropic's documented tool-use system prompt for Claude 4 models (`tool_choice` auto or none). */
export const CLAUDE_TOOLS_PROMPT = 346;

/** The cookbook's `func_init`: o200k_base models (gpt-4o) and cl100k_base models (gpt-4, gpt-3.5-turbo). */
const FUNCTION_INIT: Record<Encoding, number> = { o200k_base: 7, cl100k_base: 10 };

const openAI = (encoding: Encoding, exact: boolean): Counting => ({ encoding, exact, factor: 1, functionInit: FUNCTION_INIT[encoding], toolsPrompt: 0, method: exact ? encoding : `${encoding}, assumed for a model the gateway does not know` });

export const BYTE_ESTIMATE: Counting = { exact: false, factor: 1, functionInit: FUNCTION_INIT.o200k_base, toolsPrompt: 0, method: 'UTF-8 bytes / 4' };

/** An OpenAI model name without a fine-tune's `ft:` prefix and suffix: `ft:gpt-4o-mini-2024-07-18:org::id`. */
function baseModel(model: string): string {
  return model.startsWith('ft:') ? (model.split(':')[1] ?? '') : model;
}

export function countingFor(type: ProviderType | undefined, model: string): Counting {
  switch (type) {
    case 'openai':
    case 'azure-openai': {
      const base = baseModel(model);
      if (CL100K.test(base)) return openAI('cl100k_base', true);
      return openAI('o200k_base', O200K.test(base));
    }
    case 'anthropic':
      return { encoding: 'o200k_base', exact: false, factor: CLAUDE_FACTOR, functionInit: FUNCTION_INIT.o200k_base, toolsPrompt: CLAUDE_TOOLS_PROMPT, method: `o200k_base × ${CLAUDE_FACTOR} (Claude's tokenizer is not public)` };
    default:
      return BYTE_ESTIMATE;
  }
}

/**
 * A model's prompt is counted for its primary step (after flags): the provider that serves it unless it fails.
 * A fallback to another family may count differently; its own usage settles what it cost.
 */
export function countingForModel(config: Pick<GatewayConfig, 'providers'>, model: Pick<CompiledModel, 'fallback'>): Counting {
  const step = model.fallback[0];
  if (!step) return BYTE_ESTIMATE;
  return countingFor(config.providers.find((p) => p.name === step.provider)?.type, step.model);
}

/**
 * Only a decision needs the exact count: the model's `maxInputTokens`, or a budget, whose reservation must not fall
 * short of what the provider will charge for the prompt. Everywhere else the estimate serves (rate limits and logs
 * settle to the provider's usage), and the encoding, 40–70 MB of memory for o200k_base, is never loaded.
 */
export function needsExactCount(config: Pick<GatewayConfig, 'budget' | 'clients'>, model: Pick<CompiledModel, 'maxInputTokens'>): boolean {
  return model.maxInputTokens !== undefined || config.budget !== undefined || config.clients.some((client) => client.budget !== undefined);
}

/** How admission counts a model's prompt (after flags): with its tokenizer where a decision needs it, else the estimate. */
export function admissionCounting(config: Pick<GatewayConfig, 'providers' | 'budget' | 'clients'>, model: Pick<CompiledModel, 'fallback' | 'maxInputTokens'>): Counting {
  return needsExactCount(config, model) ? countingForModel(config, model) : BYTE_ESTIMATE;
}

/**
 * Every encoding admission may count with: each model as configured and as each flag would change it (a flag may pin
 * another family or set a cap). What the gateway loads before it serves, so no request waits for a tokenizer.
 */
export function encodingsFor(config: Pick<GatewayConfig, 'providers' | 'models' | 'flags' | 'budget' | 'clients'>): Set<Encoding> {
  const encodings = new Set<Encoding>();
  for (const model of config.models) {
    for (const variant of [model, ...config.flags.map((flag) => applyFlags(model, [flag]))]) {
      const { encoding } = admissionCounting(config, variant);
      if (encoding) encodings.add(encoding);
    }
  }
  return encodings;
}
