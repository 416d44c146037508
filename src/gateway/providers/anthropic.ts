/**
 * Anthropic's Messages API behind OpenAI's chat completions. Requests are translated (system prompt to a top-level
 * field, tool calls and results to content blocks, a required `max_tokens`), answers and stream events are
 * translated back into OpenAI completions and chunks, so clients cannot tell which provider answered.
 */
import type { ErrorClass, UpstreamError } from '../errors.js';
import type {
  ChatChunk,
  ChatCompletion,
  ChatMessage,
  ChatRequest,
  ContentPart,
  DecodedEvent,
  FinishReason,
  HttpRequest,
  SseEvent,
  StreamDecoder,
  Target,
  ToolCall,
  Usage,
} from '../types.js';
import type { ProviderAdapter } from './adapter.js';
import { clientWantsUsage, errorDetails, isRecord, joinURL, jsonPost, malformedEvent, parseEventData, upstreamError, type ErrorDetails, type HeaderReader } from './openai.js';

export const ANTHROPIC_BASE_URL = 'https://api.anthropic.com';
export const ANTHROPIC_VERSION = '2023-06-01';
/**
 * Anthropic requires `max_tokens` and OpenAI clients often send none (OpenAI then allows the model's maximum).
 * 4096 fits within the output limit of every current Claude model and is enough for ordinary chat answers.
 */
export const DEFAULT_MAX_TOKENS = 4096;

type Block = Record<string, unknown>;

interface AnthropicMessage {
  role: 'user' | 'assistant';
  content: Block[];
}

// -------------------------------------------------------------------------------------------------------------
// Requests

function textOf(content: ChatMessage['content']): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .filter((part) => part.type === 'text' && typeof part.text === 'string')
    .map((part) => part.text)
    .join('\n');
}

/** `image_url` parts as Anthropic image blocks: data URLs inline as base64, other URLs by reference. */
function imageBlock(part: ContentPart): Block | undefined {
  const url = isRecord(part.image_url) ? part.image_url.url : undefined;
  if (typeof url !== 'string') return undefined;
  if (!url.startsWith('data:')) return { type: 'image', source: { type: 'url', url } };
  const comma = url.indexOf(',');
  const header = url.slice(5, comma);
  if (comma === -1 || !header.endsWith(';base64')) return undefined;
  return { type: 'image', source: { type: 'base64', media_type: header.slice(0, -';base64'.length), data: url.slice(comma + 1) } };
}

/** Text and images; other part types (audio, files) have no Anthropic equivalent here and are left out. */
function contentBlocks(content: ChatMessage['content']): Block[] {
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }];
  if (!Array.isArray(content)) return [];
  const blocks: Block[] = [];
  for (const part of content) {
    // Anthropic rejects empty text blocks.
    if (part.type === 'text' && typeof part.text === 'string' && part.text !== '') blocks.push({ type: 'text', text: part.text });
    else if (part.type === 'image_url') {
      const image = imageBlock(part);
      if (image !== undefined) blocks.push(image);
    }
  }
  return blocks;
}

/** Anthropic needs an object; a model's invalid JSON from an earlier turn is history by now, not worth failing over. */
function parseArguments(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    return isRecord(value) ? value : {};
  } catch {
    return {};
  }
}

function toolUse(call: ToolCall): Block {
  return { type: 'tool_use', id: call.id, name: call.function.name, input: parseArguments(call.function.arguments) };
}

function toolResult(message: ChatMessage): Block {
  const text = textOf(message.content);
  return { type: 'tool_result', tool_use_id: message.tool_call_id ?? '', ...(text === '' ? {} : { content: text }) };
}

function blocksOf(message: ChatMessage): Block[] {
  if (message.role === 'tool') return [toolResult(message)];
  if (message.role === 'assistant') return [...contentBlocks(message.content), ...(message.tool_calls ?? []).map(toolUse)];
  return contentBlocks(message.content);
}

/**
 * System and developer messages become the top-level `system`; tool results become `tool_result` blocks in a user
 * turn. Consecutive turns of one role merge, because Anthropic wants all results of one assistant turn's tool calls
 * in the single user message that follows it. Empty turns are dropped (Anthropic rejects them).
 */
function translateMessages(messages: ChatMessage[]): { system?: string; messages: AnthropicMessage[] } {
  const system: string[] = [];
  const out: AnthropicMessage[] = [];
  for (const message of messages) {
    if (message.role === 'system' || message.role === 'developer') {
      const text = textOf(message.content);
      if (text !== '') system.push(text);
      continue;
    }
    const blocks = blocksOf(message);
    if (blocks.length === 0) continue;
    const role = message.role === 'assistant' ? 'assistant' : 'user';
    const last = out.at(-1);
    if (last?.role === role) last.content.push(...blocks);
    else out.push({ role, content: blocks });
  }
  trimPrefill(out);
  return { ...(system.length > 0 ? { system: system.join('\n\n') } : {}), messages: out };
}

/** Anthropic rejects a final assistant message (a prefill) that ends in whitespace; the model writes it itself. */
function trimPrefill(messages: AnthropicMessage[]): void {
  const last = messages.at(-1);
  if (last?.role !== 'assistant') return;
  const block = last.content.at(-1);
  if (block?.type !== 'text' || typeof block.text !== 'string') return;
  const text = block.text.trimEnd();
  if (text !== '') {
    block.text = text;
    return;
  }
  last.content.pop();
  if (last.content.length === 0) messages.pop();
}

function translateToolChoice(choice: unknown, parallelToolCalls: unknown): Block | undefined {
  let mapped: Block | undefined;
  if (choice === 'auto') mapped = { type: 'auto' };
  else if (choice === 'none') mapped = { type: 'none' };
  else if (choice === 'required') mapped = { type: 'any' };
  else if (isRecord(choice) && isRecord(choice.function) && typeof choice.function.name === 'string') mapped = { type: 'tool', name: choice.function.name };
  if (parallelToolCalls === false && mapped?.type !== 'none') return { ...(mapped ?? { type: 'auto' }), disable_parallel_tool_use: true };
  return mapped;
}

/** Only fields Anthropic knows: it rejects unknown ones, so nothing passes through blindly. */
function anthropicBody(request: ChatRequest, model: string): Record<string, unknown> {
  const { system, messages } = translateMessages(request.messages);
  const body: Record<string, unknown> = { model, max_tokens: request.max_completion_tokens ?? request.max_tokens ?? DEFAULT_MAX_TOKENS, messages };
  if (system !== undefined) body.system = system;
  const stop = typeof request.stop === 'string' ? [request.stop] : request.stop;
  if (Array.isArray(stop) && stop.length > 0) body.stop_sequences = stop;
  // Anthropic's range is 0 to 1 where OpenAI's is 0 to 2: clamp rather than fail a request the primary accepted.
  if (typeof request.temperature === 'number') body.temperature = Math.min(request.temperature, 1);
  // Recent Claude models refuse temperature and top_p together; temperature is the one clients usually mean.
  else if (typeof request.top_p === 'number') body.top_p = request.top_p;
  const tools = (request.tools ?? []).filter((tool) => tool.type === 'function');
  if (tools.length > 0) {
    body.tools = tools.map(({ function: f }) => ({
      name: f.name,
      ...(f.description === undefined ? {} : { description: f.description }),
      input_schema: f.parameters ?? { type: 'object', properties: {} },
    }));
    const toolChoice = translateToolChoice(request.tool_choice, request.parallel_tool_calls);
    if (toolChoice !== undefined) body.tool_choice = toolChoice;
  }
  if (typeof request.user === 'string' && request.user !== '') body.metadata = { user_id: request.user };
  if (request.stream === true) body.stream = true;
  return body;
}

// -------------------------------------------------------------------------------------------------------------
// Answers

const FINISH_REASONS: Record<string, FinishReason> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  pause_turn: 'stop',
  max_tokens: 'length',
  model_context_window_exceeded: 'length',
  tool_use: 'tool_calls',
  refusal: 'content_filter',
};

function finishReason(stopReason: unknown): FinishReason {
  if (stopReason === null || stopReason === undefined) return null;
  return FINISH_REASONS[String(stopReason)] ?? 'stop';
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

/** Cache reads and writes are prompt tokens too, as OpenAI's `prompt_tokens` includes cached ones. */
function toUsage(usage: unknown): Usage | undefined {
  if (!isRecord(usage)) return undefined;
  const prompt = count(usage.input_tokens) + count(usage.cache_creation_input_tokens) + count(usage.cache_read_input_tokens);
  const completion = count(usage.output_tokens);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function parseAnthropicMessage(body: unknown, target: Target): ChatCompletion {
  if (!isRecord(body) || !Array.isArray(body.content)) {
    throw new Error(`${target.provider.name}: the response is not an Anthropic message: ${JSON.stringify(body)?.slice(0, 500)}`);
  }
  const blocks = body.content.filter(isRecord);
  const text = blocks
    .filter((block) => block.type === 'text' && typeof block.text === 'string')
    .map((block) => block.text)
    .join('');
  const toolCalls: ToolCall[] = blocks
    .filter((block) => block.type === 'tool_use')
    .map((block) => ({ id: String(block.id), type: 'function', function: { name: String(block.name), arguments: JSON.stringify(block.input ?? {}) } }));
  const message: ChatMessage = { role: 'assistant', content: text === '' && toolCalls.length > 0 ? null : text, ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}) };
  const usage = toUsage(body.usage);
  return {
    id: typeof body.id === 'string' ? body.id : '',
    object: 'chat.completion',
    created: nowSeconds(),
    model: typeof body.model === 'string' ? body.model : target.model,
    choices: [{ index: 0, message, finish_reason: finishReason(body.stop_reason), logprobs: null }],
    ...(usage === undefined ? {} : { usage }),
  };
}

// -------------------------------------------------------------------------------------------------------------
// Streams

type Delta = ChatChunk['choices'][number]['delta'];

/**
 * Anthropic's events as OpenAI chunks: `message_start` opens with the assistant role, text and `input_json_delta`
 * deltas become content and tool-call argument deltas (numbered by tool call, not by content block),
 * `message_delta` carries the finish reason, `message_stop` completes with the usage both events reported.
 */
class AnthropicStreamDecoder implements StreamDecoder {
  private id = '';
  private model: string;
  private readonly created = nowSeconds();
  /** Anthropic's counters as last reported: `message_start` has the input, `message_delta` the cumulative output. */
  private usage: Record<string, unknown> | undefined;
  /** Content block index → OpenAI tool call index. */
  private readonly toolCalls = new Map<number, number>();

  constructor(
    target: Target,
    private readonly forwardUsage: boolean,
  ) {
    this.model = target.model;
  }

  decode(event: SseEvent): DecodedEvent {
    if (event.data.trim() === '') return { kind: 'ignore' };
    const data = parseEventData(event.data);
    if (data === undefined) return malformedEvent(event.data);
    switch (data.type ?? event.event) {
      case 'message_start':
        return this.start(data.message);
      case 'content_block_start':
        return this.blockStart(data.index, data.content_block);
      case 'content_block_delta':
        return this.blockDelta(data.index, data.delta);
      case 'message_delta':
        return this.messageDelta(data);
      case 'message_stop': {
        const usage = toUsage(this.usage);
        return usage === undefined ? { kind: 'done' } : { kind: 'done', usage };
      }
      case 'error':
        return { kind: 'error', status: statusOfType(isRecord(data.error) ? data.error.type : undefined), body: data };
      default:
        // ping, content_block_stop, thinking blocks, and event types Anthropic adds later.
        return { kind: 'ignore' };
    }
  }

  private chunk(delta: Delta, finish: FinishReason = null): ChatChunk {
    return { id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model, choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] };
  }

  private start(message: unknown): DecodedEvent {
    if (isRecord(message)) {
      if (typeof message.id === 'string') this.id = message.id;
      if (typeof message.model === 'string') this.model = message.model;
      if (isRecord(message.usage)) this.usage = { ...message.usage };
    }
    return { kind: 'chunks', chunks: [this.chunk({ role: 'assistant', content: '' })] };
  }

  private blockStart(index: unknown, block: unknown): DecodedEvent {
    if (!isRecord(block) || typeof index !== 'number') return { kind: 'ignore' };
    if (block.type === 'text' && typeof block.text === 'string' && block.text !== '') return { kind: 'chunks', chunks: [this.chunk({ content: block.text })] };
    if (block.type !== 'tool_use') return { kind: 'ignore' };
    const toolIndex = this.toolCalls.size;
    this.toolCalls.set(index, toolIndex);
    // The input normally streams as deltas; a non-empty one here is already complete.
    const input = isRecord(block.input) && Object.keys(block.input).length > 0 ? JSON.stringify(block.input) : '';
    const call = { index: toolIndex, id: String(block.id), type: 'function' as const, function: { name: String(block.name), arguments: input } };
    return { kind: 'chunks', chunks: [this.chunk({ tool_calls: [call] })] };
  }

  private blockDelta(index: unknown, delta: unknown): DecodedEvent {
    if (!isRecord(delta)) return { kind: 'ignore' };
    if (delta.type === 'text_delta' && typeof delta.text === 'string') return { kind: 'chunks', chunks: [this.chunk({ content: delta.text })] };
    const toolIndex = typeof index === 'number' ? this.toolCalls.get(index) : undefined;
    if (delta.type !== 'input_json_delta' || toolIndex === undefined || typeof delta.partial_json !== 'string' || delta.partial_json === '') return { kind: 'ignore' };
    // OpenAI's argument deltas carry only the index and the arguments; the canonical delta type (a Partial of
    // ChatMessage intersected with partial tool calls) demands whole tool calls, hence the cast.
    const call = { index: toolIndex, function: { arguments: delta.partial_json } };
    return { kind: 'chunks', chunks: [this.chunk({ tool_calls: [call] } as Delta)] };
  }

  private messageDelta(data: Record<string, unknown>): DecodedEvent {
    if (isRecord(data.usage)) this.usage = { ...this.usage, ...data.usage };
    const stopReason = isRecord(data.delta) ? data.delta.stop_reason : undefined;
    const chunks = [this.chunk({}, finishReason(stopReason) ?? 'stop')];
    const usage = toUsage(this.usage);
    if (this.forwardUsage && usage !== undefined) chunks.push({ ...this.chunk({}), choices: [], usage });
    return { kind: 'chunks', chunks };
  }
}

// -------------------------------------------------------------------------------------------------------------
// Errors

const STATUS_OF_TYPE: Record<string, number> = {
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  timeout_error: 504,
  overloaded_error: 529,
};

/** The status an error event inside a 200 stream stands for, from its type. */
function statusOfType(type: unknown): number {
  return (typeof type === 'string' ? STATUS_OF_TYPE[type] : undefined) ?? 500;
}

// A low credit balance arrives as a 400 invalid_request_error, a reached spend limit likewise; only the words tell.
const QUOTA_MESSAGE = /credit balance is too low|reached your specified API usage limits/i;
const CONTEXT_MESSAGE = /prompt is too long|exceed context limit|context window/i;
const CONTENT_FILTER_MESSAGE = /content filtering policy/i;

function anthropicErrorClass(status: number, { message, type }: ErrorDetails): ErrorClass {
  if (type === 'overloaded_error' || status === 529) return 'overloaded';
  if (type === 'billing_error' || QUOTA_MESSAGE.test(message)) return 'quota_exhausted';
  if (type === 'rate_limit_error' || status === 429) return 'rate_limited';
  if (type === 'authentication_error' || type === 'permission_error' || status === 401 || status === 403) return 'auth_failed';
  if (CONTEXT_MESSAGE.test(message)) return 'context_length_exceeded';
  if (CONTENT_FILTER_MESSAGE.test(message)) return 'content_filtered';
  if (status === 503) return 'overloaded';
  if (status >= 400 && status < 500) return 'bad_request';
  return 'server_error';
}

function classifyAnthropic(status: number, headers: HeaderReader, body: unknown, target: Target): UpstreamError {
  const details = errorDetails(body);
  return upstreamError(target, anthropicErrorClass(status, details), status, details, headers);
}

// -------------------------------------------------------------------------------------------------------------
// The adapter

function headers(key: string | undefined): Record<string, string> {
  return { 'anthropic-version': ANTHROPIC_VERSION, ...(key === undefined || key === '' ? {} : { 'x-api-key': key }) };
}

export const anthropic: ProviderAdapter = {
  type: 'anthropic',
  supportsPrefill: true,
  chatRequest: (request: ChatRequest, target: Target): HttpRequest =>
    jsonPost(joinURL(target.provider.baseURL ?? ANTHROPIC_BASE_URL, '/v1/messages'), headers(target.key), anthropicBody(request, target.model)),
  parseChat: parseAnthropicMessage,
  streamDecoder: (target: Target, request: ChatRequest): StreamDecoder => new AnthropicStreamDecoder(target, clientWantsUsage(request)),
  classify: classifyAnthropic,
};
