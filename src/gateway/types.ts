/**
 * The gateway's canonical shapes. Clients speak OpenAI's chat completions API, so that is the internal language too:
 * each provider adapter translates an OpenAI request into its own wire format and its answers back.
 * Only the fields the gateway reads are typed; everything else a client sends passes through untouched.
 */
import type { CompiledProvider } from '../api/gateway-config.js';

export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool';
  content: string | ContentPart[] | null;
  name?: string;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  [field: string]: unknown;
}

export interface ContentPart {
  type: string;
  text?: string;
  [field: string]: unknown;
}

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  max_tokens?: number;
  max_completion_tokens?: number;
  stop?: string | string[];
  temperature?: number;
  top_p?: number;
  tools?: { type: 'function'; function: { name: string; description?: string; parameters?: unknown } }[];
  tool_choice?: unknown;
  response_format?: unknown;
  user?: string;
  [field: string]: unknown;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | null;

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: { index: number; message: ChatMessage; finish_reason: FinishReason; logprobs?: unknown }[];
  usage?: Usage;
  [field: string]: unknown;
}

/** A streamed delta: tool calls arrive in pieces, keyed by index, so none of their fields is guaranteed. */
export type ChunkDelta = Omit<Partial<ChatMessage>, 'tool_calls'> & {
  tool_calls?: { index: number; id?: string; type?: 'function'; function?: { name?: string; arguments?: string } }[];
};

export interface ChatChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: { index: number; delta: ChunkDelta; finish_reason: FinishReason; logprobs?: unknown }[];
  usage?: Usage | null;
  [field: string]: unknown;
}

export interface EmbeddingsRequest {
  model: string;
  input: string | string[] | number[] | number[][];
  [field: string]: unknown;
}

/** One upstream call: which provider, which model it is asked for (never the client's alias), and with which key. */
export interface Target {
  provider: CompiledProvider;
  model: string;
  key: string | undefined;
}

export interface HttpRequest {
  url: string;
  method: 'POST' | 'GET';
  headers: Record<string, string>;
  body?: string;
}

/** A server-sent event as read off the wire. */
export interface SseEvent {
  event?: string;
  data: string;
}

/** What a stream decoder makes of one provider event. */
export type DecodedEvent =
  | { kind: 'chunks'; chunks: ChatChunk[] }
  /** The provider said the answer is complete (`[DONE]`, Anthropic's `message_stop`). */
  | { kind: 'done'; usage?: Usage }
  /** An error the provider sent inside the stream (Anthropic's `error` event, an OpenAI error object). */
  | { kind: 'error'; status: number; body: unknown }
  /** Keep-alives, pings and events that carry nothing for the client. */
  | { kind: 'ignore' };

export interface StreamDecoder {
  decode(event: SseEvent): DecodedEvent;
  /**
   * The body ended. Servers that never send `[DONE]` (llama.cpp) finish this way: `done` when the answer was
   * complete, undefined when the stream was cut.
   */
  end?(): DecodedEvent | undefined;
}
