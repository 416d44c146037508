/**
 * The contract every provider adapter fulfils, one file per provider. Adapters are pure translators: they build
 * requests and read responses; sending, retrying, timing and failing over belong to the router.
 */
import type { ProviderType } from '../../api/schema.js';
import type { UpstreamError } from '../errors.js';
import type { ChatCompletion, ChatRequest, EmbeddingsRequest, HttpRequest, StreamDecoder, Target } from '../types.js';

export interface ProviderAdapter {
  readonly type: ProviderType;
  /**
   * Whether the provider continues a partial assistant message given as the last message (a prefill). Mid-stream
   * continuation uses a prefill where it can and an explicit instruction where it cannot.
   */
  readonly supportsPrefill: boolean;
  chatRequest(request: ChatRequest, target: Target): HttpRequest;
  /** A successful non-streaming answer, in OpenAI's shape, `model` naming what the provider says answered. */
  parseChat(body: unknown, target: Target): ChatCompletion;
  streamDecoder(target: Target, request: ChatRequest): StreamDecoder;
  /** Classifies a failed response. `body` is the parsed JSON, or the raw text when it was not JSON. */
  classify(status: number, headers: { get(name: string): string | null }, body: unknown, target: Target): UpstreamError;
  /** Absent when the provider has no embeddings API (Anthropic). */
  embeddingsRequest?(request: EmbeddingsRequest, target: Target): HttpRequest;
}
