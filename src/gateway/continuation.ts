/**
 * Continuing an answer that was cut or stalled after part of it reached the client. The next provider is asked to
 * finish the same answer from where it stopped: with the partial answer as an assistant prefill where the provider
 * continues prefills (Anthropic), or else with the partial answer as a finished assistant turn followed by an
 * explicit instruction. The client sees one seamless stream.
 */
import type { ChatRequest } from './types.js';

export const CONTINUE_INSTRUCTION =
  'Your previous answer was cut off. Continue it exactly where it stopped: do not repeat anything already written, do not comment on the interruption, start with the very next characters.';

export function continuationRequest(request: ChatRequest, partial: string, prefill: boolean): ChatRequest {
  const assistant = { role: 'assistant' as const, content: partial };
  return {
    ...request,
    messages: prefill ? [...request.messages, assistant] : [...request.messages, assistant, { role: 'user', content: CONTINUE_INSTRUCTION }],
  };
}

/** Whether an answer can be continued: text only. A half-streamed tool call cannot be resumed by another model. */
export function continuable(partialHasToolCalls: boolean): boolean {
  return !partialHasToolCalls;
}

/**
 * Where a prefill continuation joins the partial answer. Anthropic refuses a prefill that ends in whitespace, so the
 * adapter trims it and the model writes that whitespace again at the start of its continuation; the client already
 * has it. The returned function, fed the continuation's content in order, drops that much leading whitespace once.
 */
export function prefillSeam(partial: string): (content: string) => string {
  let owed = partial.length - partial.trimEnd().length;
  return (content) => {
    if (owed === 0 || content === '') return content;
    const drop = Math.min(owed, content.length - content.trimStart().length);
    // A chunk of whitespace only may be followed by more of it; anything else ends the seam.
    owed = drop === content.length ? owed - drop : 0;
    return content.slice(drop);
  };
}
