/**
 * Writing answers to clients. A stream commits (sends its status and headers) with the first content, so any failure
 * before it can still become a fallback, or a proper HTTP error. After it, a failure that cannot be continued ends
 * the stream with an explicit error event and never with `[DONE]`: a truncated answer must not look complete.
 */
import type { ServerResponse } from 'node:http';
import { Accumulator } from './accumulate.js';
import { CLIENT_ERROR, openAIError, type UpstreamError } from './errors.js';
import type { Sink } from './router.js';
import type { ChatChunk, ChatCompletion, Usage } from './types.js';

/** Rewrites a provider's chunk as the gateway's: one id and creation time for the whole answer. */
function asGatewayChunk(chunk: ChatChunk, id: string, created: number, model: string): ChatChunk {
  return { ...chunk, id, created, model, object: 'chat.completion.chunk' };
}

export class StreamSink implements Sink {
  private started = false;
  private readonly created = Math.floor(Date.now() / 1000);
  private model = '';
  /** Headers sent as the answer starts: who answered, after how many attempts, how deep in the chain. */
  private headers: () => Record<string, string> = () => ({});

  constructor(
    private readonly response: ServerResponse,
    private readonly requestId: string,
    private readonly includeUsage: boolean,
  ) {}

  setHeaders(headers: () => Record<string, string>): void {
    this.headers = headers;
  }

  private commit(): void {
    if (this.started) return;
    this.started = true;
    this.response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-request-id': this.requestId,
      ...this.headers(),
    });
    this.response.flushHeaders();
  }

  write(chunk: ChatChunk, _provider: string, model: string): void {
    this.model = model;
    // The provider's own usage chunk is replaced by the gateway's total at the end.
    if (chunk.choices.length === 0) return;
    this.commit();
    this.response.write(`data: ${JSON.stringify(asGatewayChunk({ ...chunk, usage: undefined }, this.requestId, this.created, model))}\n\n`);
  }

  committed(): boolean {
    return this.started;
  }

  reset(): void {
    // Nothing reached the client: there is nothing to forget.
  }

  finish(usage: Usage | undefined): void {
    this.commit();
    if (this.includeUsage && usage) {
      this.response.write(`data: ${JSON.stringify({ id: this.requestId, object: 'chat.completion.chunk', created: this.created, model: this.model, choices: [], usage })}\n\n`);
    }
    this.response.end('data: [DONE]\n\n');
  }

  /** After content was sent: an error event the OpenAI SDK raises as an APIError, and no `[DONE]`. */
  fail(error: UpstreamError, truncatedBecause: string): void {
    const type = CLIENT_ERROR[error.class].type;
    this.response.end(`data: ${JSON.stringify(openAIError(`the answer was cut off and could not be continued (${truncatedBecause}): ${error.message}`, type, error.code ?? error.class))}\n\n`);
  }
}

export class JsonSink implements Sink {
  private accumulator = new Accumulator();

  write(chunk: ChatChunk): void {
    this.accumulator.add(chunk);
  }

  committed(): boolean {
    return false;
  }

  reset(): void {
    this.accumulator = new Accumulator();
  }

  completion(id: string, model: string, usage: Usage | undefined): ChatCompletion {
    return this.accumulator.completion(id, Math.floor(Date.now() / 1000), model, usage);
  }
}
