/**
 * Assembles streamed chunks into one chat completion. The gateway streams from providers even when the client did
 * not ask to stream: only a stream shows when the first token arrives and when an answer stalls, so every request
 * gets the same time limits and the same protection against truncated answers.
 */
import type { ChatChunk, ChatCompletion, FinishReason, ToolCall, Usage } from './types.js';

export class Accumulator {
  private content = '';
  private hasContent = false;
  private readonly toolCalls: ToolCall[] = [];
  private finish: FinishReason = null;
  private refusal: string | undefined;

  /** Adds one chunk's first choice. */
  add(chunk: ChatChunk): void {
    const choice = chunk.choices[0];
    if (!choice) return;
    const delta = choice.delta;
    if (typeof delta.content === 'string') {
      this.content += delta.content;
      this.hasContent = true;
    }
    if (typeof delta.refusal === 'string') this.refusal = (this.refusal ?? '') + delta.refusal;
    for (const call of delta.tool_calls ?? []) {
      const existing = this.toolCalls[call.index];
      if (!existing) {
        this.toolCalls[call.index] = { id: call.id ?? '', type: 'function', function: { name: call.function?.name ?? '', arguments: call.function?.arguments ?? '' } };
      } else {
        if (call.id) existing.id = call.id;
        if (call.function?.name) existing.function.name += call.function.name;
        if (call.function?.arguments) existing.function.arguments += call.function.arguments;
      }
    }
    if (choice.finish_reason) this.finish = choice.finish_reason;
  }

  /** The text so far: what a continuation must not repeat. */
  text(): string {
    return this.content;
  }

  hasToolCalls(): boolean {
    return this.toolCalls.length > 0;
  }

  finishReason(): FinishReason {
    return this.finish;
  }

  completion(id: string, created: number, model: string, usage: Usage | undefined): ChatCompletion {
    const toolCalls = this.toolCalls.filter(Boolean);
    return {
      id,
      object: 'chat.completion',
      created,
      model,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: this.hasContent || toolCalls.length === 0 ? this.content : null,
            ...(toolCalls.length ? { tool_calls: toolCalls } : {}),
            ...(this.refusal !== undefined ? { refusal: this.refusal } : {}),
          },
          finish_reason: this.finish ?? 'stop',
        },
      ],
      ...(usage ? { usage } : {}),
    };
  }
}

export function addUsage(a: Usage | undefined, b: Usage | undefined): Usage | undefined {
  if (!a) return b;
  if (!b) return a;
  return { prompt_tokens: a.prompt_tokens + b.prompt_tokens, completion_tokens: a.completion_tokens + b.completion_tokens, total_tokens: a.total_tokens + b.total_tokens };
}
