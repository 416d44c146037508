/**
 * Azure OpenAI: OpenAI's wire format behind a different address and key. The deployment name replaces the model in
 * the path (`/openai/deployments/{deployment}/...?api-version=...`), the key travels in `api-key`, and the response's
 * `model` names the model behind the deployment. What differs beyond that is content filtering: Azure refuses
 * prompts with a 400 whose `innererror` says which category fired, and ends filtered streams with
 * `finish_reason: "content_filter"`. Both become `content_filtered` with Azure's reason in the message.
 */
import type { UpstreamError } from '../errors.js';
import type { ChatChunk, ChatRequest, DecodedEvent, EmbeddingsRequest, HttpRequest, StreamDecoder, Target } from '../types.js';
import type { ProviderAdapter } from './adapter.js';
import { chatBody, classifyOpenAI, clientWantsUsage, isRecord, joinURL, jsonPost, OpenAIStreamDecoder, parseOpenAIChat, type HeaderReader } from './openai.js';

/** `{baseURL}/openai/deployments/{deployment}/{operation}?api-version=...` for the target's model. */
function deploymentURL(target: Target, operation: 'chat/completions' | 'embeddings'): string {
  const { name, baseURL, apiVersion, deployments } = target.provider;
  // Validation rules out all three; a config that slipped past it still deserves a message naming the fix.
  if (baseURL === undefined || baseURL === '') throw new Error(`provider "${name}" (azure-openai) has no baseURL: set it to the resource endpoint`);
  if (apiVersion === undefined || apiVersion === '') throw new Error(`provider "${name}" (azure-openai) has no apiVersion`);
  const deployment = deployments?.[target.model];
  if (deployment === undefined) {
    throw new Error(`provider "${name}" (azure-openai) has no deployment for model "${target.model}": add it to the provider's deployments`);
  }
  return `${joinURL(baseURL, `/openai/deployments/${encodeURIComponent(deployment)}/${operation}`)}?api-version=${encodeURIComponent(apiVersion)}`;
}

function apiKey(key: string | undefined): Record<string, string> {
  return key === undefined || key === '' ? {} : { 'api-key': key };
}

/** The categories Azure's filter flagged, e.g. `violence (medium), jailbreak`, from an error body's `innererror`. */
function contentFilterReason(results: unknown): string | undefined {
  if (!isRecord(results)) return undefined;
  const flagged = Object.entries(results)
    .filter(([, result]) => isRecord(result) && result.filtered === true)
    .map(([category, result]) => (isRecord(result) && typeof result.severity === 'string' ? `${category} (${result.severity})` : category));
  return flagged.length > 0 ? flagged.join(', ') : undefined;
}

function innerError(body: unknown): Record<string, unknown> | undefined {
  const error = isRecord(body) && isRecord(body.error) ? body.error : undefined;
  return error !== undefined && isRecord(error.innererror) ? error.innererror : undefined;
}

function classifyAzure(status: number, headers: HeaderReader, body: unknown, target: Target): UpstreamError {
  const error = classifyOpenAI(status, headers, body, target);
  const inner = innerError(body);
  const reason = contentFilterReason(inner?.content_filter_result);
  if (error.class !== 'content_filtered' && inner?.code !== 'ResponsibleAIPolicyViolation') return error;
  return { ...error, class: 'content_filtered', ...(reason === undefined ? {} : { message: `${error.message} (filtered: ${reason})` }) };
}

/** The error body for a stream Azure ended with `finish_reason: "content_filter"`, shaped like its 400 so one classifier reads both. */
function streamFilterError(results: unknown): DecodedEvent {
  const message = "The response was filtered by Azure OpenAI's content management policy while streaming";
  return { kind: 'error', status: 400, body: { error: { code: 'content_filter', message, innererror: { content_filter_result: results } } } };
}

type Choice = ChatChunk['choices'][number];

/**
 * The OpenAI decoder, plus Azure's stream quirks: a filtered completion is an error, not a clean-looking end, and
 * the annotation chunks of the asynchronous filter (choices without `delta`) are dropped, since OpenAI clients
 * index into `delta` and would fail on them.
 */
class AzureStreamDecoder extends OpenAIStreamDecoder {
  protected override chunk(chunk: ChatChunk): DecodedEvent {
    if (!Array.isArray(chunk.choices)) return super.chunk(chunk);
    const filtered = chunk.choices.find((choice) => choice.finish_reason === 'content_filter');
    if (filtered !== undefined) return streamFilterError((filtered as Choice & { content_filter_results?: unknown }).content_filter_results);
    if (chunk.choices.every(hasDelta)) return super.chunk(chunk);
    // A choice without delta still matters when it carries the finish reason.
    const choices = chunk.choices.filter((choice) => hasDelta(choice) || typeof choice.finish_reason === 'string').map((choice) => (hasDelta(choice) ? choice : { ...choice, delta: {} }));
    return super.chunk({ ...chunk, choices });
  }
}

function hasDelta(choice: Choice): boolean {
  return isRecord(choice.delta);
}

export const azureOpenAI: ProviderAdapter = {
  type: 'azure-openai',
  supportsPrefill: false,
  // No `model` in the body: the deployment in the path decides which model answers.
  chatRequest: (request: ChatRequest, target: Target): HttpRequest => jsonPost(deploymentURL(target, 'chat/completions'), apiKey(target.key), chatBody(request, undefined)),
  parseChat: parseOpenAIChat,
  streamDecoder: (_target: Target, request: ChatRequest): StreamDecoder => new AzureStreamDecoder(clientWantsUsage(request)),
  classify: classifyAzure,
  embeddingsRequest: (request: EmbeddingsRequest, target: Target): HttpRequest => {
    const { model: _model, ...body } = request;
    return jsonPost(deploymentURL(target, 'embeddings'), apiKey(target.key), body);
  },
};
