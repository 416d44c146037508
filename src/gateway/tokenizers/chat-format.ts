/**
 * What of a chat request becomes prompt tokens, following OpenAI's cookbook "How to count tokens with tiktoken":
 * every message costs 3 tokens of framing plus its role and content, a `name` 1 more, and the reply is primed with
 * 3. Those rules match OpenAI's reported usage for gpt-3.5-turbo, gpt-4 and gpt-4o; newer families may frame
 * messages differently by a few tokens.
 *
 * Tool definitions follow the cookbook's `num_tokens_for_tools`, which it checked against the API for flat
 * parameters; nested schemas are counted as their JSON text. Tool calls, tool results, images, content split into
 * several parts and response schemas have no published rule: they are approximated, and named, so a count that
 * includes them is reported as an estimate.
 */
import { isRecord } from '../providers/openai.js';
import type { ChatMessage, ChatRequest } from '../types.js';
import type { Counting } from './families.js';

export interface PromptPieces {
  /** Texts to tokenize. */
  texts: string[];
  /** Tokens that need no tokenizing: framing, the cookbook's constants, images, the provider's tools prompt. */
  fixed: number;
  /** Parts counted by approximation, named for the client. */
  approximated: Set<string>;
}

const PER_MESSAGE = 3;
const PER_NAME = 1;
const REPLY_PRIMING = 3;
/** Framing of an assistant's tool call besides its name and arguments (an empirical figure, not OpenAI's). */
const PER_TOOL_CALL = 3;
/** The cookbook's constants for tool definitions, besides `func_init` (which depends on the encoding). */
const TOOLS = { propertiesInit: 3, propertyKey: 3, enumInit: -3, enumItem: 3, end: 12 };
/**
 * An image's tokens depend on its size, detail and the model, and the gateway does not decode images: OpenAI's
 * example of a 1024×1024 high-detail image on gpt-4o. On gpt-4o a low-detail image is 85, the largest 1,445.
 */
export const IMAGE_TOKENS = 765;

function contentPieces(content: unknown, pieces: PromptPieces): void {
  if (typeof content === 'string') return void pieces.texts.push(content);
  if (!Array.isArray(content)) return;
  if (content.length > 1) pieces.approximated.add('content in several parts');
  for (const part of content as unknown[]) {
    if (!isRecord(part)) continue;
    if (typeof part.text === 'string') pieces.texts.push(part.text);
    else if (part.type === 'image_url') {
      pieces.fixed += IMAGE_TOKENS;
      pieces.approximated.add('images');
    } else pieces.approximated.add(`${String(part.type)} parts`);
  }
}

function messagePieces(message: ChatMessage, pieces: PromptPieces): void {
  pieces.fixed += PER_MESSAGE;
  pieces.texts.push(message.role);
  contentPieces(message.content, pieces);
  if (typeof message.name === 'string') {
    pieces.texts.push(message.name);
    pieces.fixed += PER_NAME;
  }
  if (message.role === 'tool') pieces.approximated.add('tool results');
  if (!Array.isArray(message.tool_calls)) return;
  for (const call of message.tool_calls as unknown[]) {
    const fn = isRecord(call) && isRecord(call.function) ? call.function : {};
    for (const text of [fn.name, fn.arguments]) if (typeof text === 'string') pieces.texts.push(text);
    pieces.fixed += PER_TOOL_CALL;
    pieces.approximated.add('tool calls');
  }
}

/** The cookbook strips a description's final period. */
const described = (value: unknown): string => (typeof value === 'string' ? value.replace(/\.$/, '') : '');

function propertyPieces(name: string, schema: Record<string, unknown>, pieces: PromptPieces): void {
  const { type, description, enum: values, ...rest } = schema;
  pieces.fixed += TOOLS.propertyKey;
  if (Array.isArray(values)) {
    pieces.fixed += TOOLS.enumInit;
    for (const value of values as unknown[]) {
      pieces.fixed += TOOLS.enumItem;
      pieces.texts.push(String(value));
    }
  }
  pieces.texts.push(`${name}:${typeof type === 'string' ? type : JSON.stringify(type ?? '')}:${described(description)}`);
  // Beyond the cookbook: nested objects, array items, unions. Their JSON text is a generous stand-in.
  if (Object.keys(rest).length > 0) pieces.texts.push(JSON.stringify(rest));
}

function toolPieces(tools: unknown[], counting: Pick<Counting, 'functionInit' | 'toolsPrompt'>, pieces: PromptPieces): void {
  for (const tool of tools) {
    const fn = isRecord(tool) && isRecord(tool.function) ? tool.function : {};
    pieces.fixed += counting.functionInit;
    pieces.texts.push(`${typeof fn.name === 'string' ? fn.name : ''}:${described(fn.description)}`);
    const properties = isRecord(fn.parameters) && isRecord(fn.parameters.properties) ? Object.entries(fn.parameters.properties) : [];
    if (properties.length > 0) pieces.fixed += TOOLS.propertiesInit;
    for (const [name, schema] of properties) propertyPieces(name, isRecord(schema) ? schema : {}, pieces);
  }
  pieces.fixed += TOOLS.end + counting.toolsPrompt;
  pieces.approximated.add('tool definitions');
}

export function promptPieces(request: ChatRequest, counting: Pick<Counting, 'functionInit' | 'toolsPrompt'>): PromptPieces {
  const pieces: PromptPieces = { texts: [], fixed: REPLY_PRIMING, approximated: new Set() };
  for (const message of request.messages) messagePieces(message, pieces);
  if (Array.isArray(request.tools) && request.tools.length > 0) toolPieces(request.tools, counting, pieces);
  // Structured outputs put the schema in front of the model too.
  const format = request.response_format;
  if (isRecord(format) && format.type === 'json_schema') {
    pieces.texts.push(JSON.stringify(format.json_schema ?? {}));
    pieces.approximated.add('the response schema');
  }
  return pieces;
}
