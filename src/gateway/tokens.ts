/**
 * Token estimates for admission (rate limits now; budgets reserve worst-case cost later): the prompt's characters
 * over four, a common rule of thumb for English with OpenAI's and Anthropic's tokenizers, plus the most the answer
 * may use. Exact counts come from the provider's usage afterwards; the limiter settles to them.
 */
import type { CompiledModel } from '../api/gateway-config.js';
import type { ChatRequest } from './types.js';

/** Answer length assumed when neither the request nor the model bounds it. */
export const DEFAULT_OUTPUT_TOKENS = 1024;

export function estimatePromptTokens(request: ChatRequest): number {
  let characters = 0;
  for (const message of request.messages) {
    if (typeof message.content === 'string') characters += message.content.length;
    else if (Array.isArray(message.content)) for (const part of message.content) characters += part.text?.length ?? 0;
    for (const call of message.tool_calls ?? []) characters += call.function.arguments.length + call.function.name.length;
    // Role and framing tokens per message.
    characters += 16;
  }
  if (request.tools) characters += JSON.stringify(request.tools).length;
  return Math.ceil(characters / 4);
}

export function maxOutputTokens(request: ChatRequest, model: Pick<CompiledModel, 'maxOutputTokens'>): number {
  return request.max_completion_tokens ?? request.max_tokens ?? model.maxOutputTokens ?? DEFAULT_OUTPUT_TOKENS;
}

export function estimateRequestTokens(request: ChatRequest, model: Pick<CompiledModel, 'maxOutputTokens'>): number {
  return estimatePromptTokens(request) + maxOutputTokens(request, model);
}
