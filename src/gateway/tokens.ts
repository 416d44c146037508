/**
 * Prompt token counts for admission: the model's `maxInputTokens` (a 400 before any money is spent), budget
 * reservations, client rate limits, and the cost of an attempt the provider reported no usage for. The model's own
 * tokenizer counts where one is public (tokenizers/families.ts says which); elsewhere the count is an estimate and
 * says so. Limits and budgets settle to the provider's reported usage afterwards, whichever it was.
 *
 * Only a decision needs an exact count (`admissionCounting`: a cap or a budget); elsewhere the byte estimate serves.
 * Tokenizing costs 65–160 µs per KB of prompt (docs/gateway.md, "Token counting"), dozens of times JSON.parse of
 * the same body, paid on the event loop, so the count is exact only where that is cheap or a decision needs it:
 *
 * - up to EXACT_COUNT_MAX_BYTES of text (about 500 tokens, 0.15–0.3 ms), always: budgets, limits and logs get the
 *   exact number;
 * - above that, only when the cap's decision needs it. A token is at least one byte, so the text's UTF-8 bytes plus
 *   the fixed tokens bound the count from above; a prompt whose bound is within `maxInputTokens` (or whose model
 *   has no cap) fits without tokenizing, and gets the byte estimate, which only reservations use until the
 *   provider's usage replaces it. A prompt near or over the cap is tokenized whole, so a refusal is never a guess
 *   when a tokenizer exists, and says by how much.
 */
import type { CompiledModel } from '../api/gateway-config.js';
import { HttpError } from './http-error.js';
import { promptPieces, type PromptPieces } from './tokenizers/chat-format.js';
import { tokenCounter } from './tokenizers/encodings.js';
import { BYTE_ESTIMATE, type Counting } from './tokenizers/families.js';
import type { ChatRequest } from './types.js';

/** Answer length assumed when neither the request nor the model bounds it. */
export const DEFAULT_OUTPUT_TOKENS = 1024;

/**
 * Text up to this size is always tokenized: a chat turn or a short system prompt. Larger prompts (RAG context, long
 * documents) would cost the event loop a millisecond or more each, for a number that only reservations use.
 */
export const EXACT_COUNT_MAX_BYTES = 2 * 1024;

/**
 * The estimate where no tokenizer applies: English prose runs 4–4.7 bytes per token in OpenAI's and Claude's
 * tokenizers, code and JSON about 3, CJK text 3–4 (three bytes a character), so it is close for prose and
 * under-counts code and JSON by up to a quarter. Bytes rather than characters: a characters ratio under-counts
 * CJK text three- to fourfold.
 */
const BYTES_PER_TOKEN = 4;

export interface PromptCount {
  tokens: number;
  /** Counted with the model's own tokenizer by OpenAI's published rules; otherwise an estimate. */
  exact: boolean;
  /** How it was counted, for the client: "counted with o200k_base", "estimated with …; approximated: images". */
  how: string;
}

export function needsTokenizer(textBytes: number, upperBound: number, cap: number | undefined): boolean {
  return textBytes <= EXACT_COUNT_MAX_BYTES || (cap !== undefined && upperBound > cap);
}

const utf8Bytes = (texts: string[]) => texts.reduce((sum, text) => sum + Buffer.byteLength(text), 0);

/** The text's tokens plus the fixed ones, scaled for a model whose tokenizer is not public. */
const total = (textTokens: number, pieces: PromptPieces, counting: Counting) => Math.ceil((textTokens + pieces.fixed) * counting.factor);

function byteEstimate(bytes: number, pieces: PromptPieces, counting: Counting): PromptCount {
  const scaled = counting.factor === 1 ? '' : ` × ${counting.factor}`;
  return { tokens: total(bytes / BYTES_PER_TOKEN, pieces, counting), exact: false, how: `estimated with ${BYTE_ESTIMATE.method}${scaled}` };
}

export async function countPromptTokens(request: ChatRequest, counting: Counting, cap: number | undefined): Promise<PromptCount> {
  const pieces = promptPieces(request, counting);
  const bytes = utf8Bytes(pieces.texts);
  if (!counting.encoding || !needsTokenizer(bytes, total(bytes, pieces, counting), cap)) return byteEstimate(bytes, pieces, counting);
  const counter = tokenCounter(counting.encoding);
  const count = typeof counter === 'function' ? counter : await counter;
  const tokens = total(pieces.texts.reduce((sum, text) => sum + count(text), 0), pieces, counting);
  const approximated = [...pieces.approximated];
  if (counting.exact && approximated.length === 0) return { tokens, exact: true, how: `counted with ${counting.method}` };
  return { tokens, exact: false, how: `estimated with ${counting.method}${approximated.length ? `; approximated: ${approximated.join(', ')}` : ''}` };
}

/** The 400 for a prompt over the model's `maxInputTokens`, saying by how much and how it was counted. */
export function inputLimitError(count: PromptCount, model: Pick<CompiledModel, 'name' | 'maxInputTokens'>): HttpError | undefined {
  const cap = model.maxInputTokens;
  if (cap === undefined || count.tokens <= cap) return undefined;
  const tokens = `${count.exact ? '' : 'about '}${count.tokens} tokens (${count.how})`;
  return new HttpError(400, `the prompt is ${tokens}, ${count.tokens - cap} over model "${model.name}"'s limit of ${cap}; shorten it`, 'invalid_request_error', 'context_length_exceeded', 'messages');
}

export function maxOutputTokens(request: ChatRequest, model: Pick<CompiledModel, 'maxOutputTokens'>): number {
  return request.max_completion_tokens ?? request.max_tokens ?? model.maxOutputTokens ?? DEFAULT_OUTPUT_TOKENS;
}

/** For provider rate limits, which settle to reported usage: the byte estimate, without tokenizing. */
export function estimateRequestTokens(request: ChatRequest, model: Pick<CompiledModel, 'maxOutputTokens'>): number {
  const pieces = promptPieces(request, BYTE_ESTIMATE);
  return byteEstimate(utf8Bytes(pieces.texts), pieces, BYTE_ESTIMATE).tokens + maxOutputTokens(request, model);
}
