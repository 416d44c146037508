/**
 * Self-hosted servers that speak OpenAI's API: vLLM, Ollama, llama.cpp, LM Studio and the like. The wire format is
 * OpenAI's, so everything is reused from openai.ts; the differences are tolerance for their quirks. Usage may be
 * missing from streams; older llama.cpp never sends `[DONE]`; errors come as `{error: {code: 400, message, type}}`
 * (llama.cpp), top-level `{object: "error", ...}` (older vLLM) or an `error:` SSE line (llama.cpp), all of which the
 * shared error reading and SSE parser already understand. Keys are optional: most such servers have none.
 */
import type { ChatChunk, DecodedEvent, Target } from '../types.js';
import type { ProviderAdapter } from './adapter.js';
import { OpenAIStreamDecoder, openAIWireAdapter } from './openai.js';

function baseURL(target: Target): string {
  const url = target.provider.baseURL;
  if (url === undefined || url === '') {
    throw new Error(`provider "${target.provider.name}" (openai-compatible) has no baseURL: set it to the server's URL, e.g. http://vllm:8000/v1`);
  }
  return url;
}

/**
 * The OpenAI decoder, plus `end()` for servers that close the body without `[DONE]`: once a choice has finished, the
 * answer is complete; before that, the stream was cut.
 */
export class CompatibleStreamDecoder extends OpenAIStreamDecoder {
  private finished = false;

  protected override chunk(chunk: ChatChunk): DecodedEvent {
    if (Array.isArray(chunk.choices) && chunk.choices.some((choice) => typeof choice.finish_reason === 'string')) this.finished = true;
    return super.chunk(chunk);
  }

  /** What the end of the body means: `done` if the answer was complete, undefined if it was cut short. */
  end(): DecodedEvent | undefined {
    return this.finished ? this.done() : undefined;
  }
}

// Prefill stays off: some servers continue a trailing assistant message (vLLM with continue_final_message), most do not.
export const openAICompatible: ProviderAdapter = openAIWireAdapter('openai-compatible', baseURL, (wantsUsage) => new CompatibleStreamDecoder(wantsUsage));
