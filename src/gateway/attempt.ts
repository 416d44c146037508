/**
 * One upstream attempt: send a streaming request, read its events, and report how it ended. Three time limits
 * apply: the first token must arrive within `firstTokenMs`, consecutive content chunks may be at most `idleMs`
 * apart (pings do not count: a provider that only pings is stalled), and nothing may outlive the request's deadline.
 * Every way an attempt can fail ends as a classified UpstreamError; nothing here throws.
 */
import type { ErrorClass, UpstreamError } from './errors.js';
import type { ProviderAdapter } from './providers/adapter.js';
import { SseParser } from './sse.js';
import type { Transport } from './transport.js';
import type { ChatChunk, ChatRequest, Target, Usage } from './types.js';

export interface AttemptOptions {
  transport: Transport;
  adapter: ProviderAdapter;
  target: Target;
  request: ChatRequest;
  firstTokenMs: number;
  idleMs: number;
  /** Absolute time (Date.now()) by which everything must be over. */
  deadline: number;
  /** The client's connection: when it goes, the attempt stops at once. */
  clientSignal: AbortSignal;
  /** Receives every chunk that carries something for the client, in order. */
  onChunk: (chunk: ChatChunk) => void;
  /** Called once per event the provider sent that could not be read. */
  onMalformed?: () => void;
  /** The response's headers, whatever its status, as soon as they arrive: what the provider says of its rate limits. */
  onHeaders?: (headers: { get(name: string): string | null }) => void;
}

export type AttemptResult =
  | { kind: 'complete'; usage?: Usage; firstTokenMs: number; durationMs: number; model?: string }
  | { kind: 'failed'; error: UpstreamError; producedOutput: boolean; firstTokenMs?: number; durationMs: number; usage?: Usage }
  | { kind: 'client-gone'; durationMs: number };

type StopReason = 'first-token' | 'idle' | 'deadline' | 'client';

function carriesOutput(chunk: ChatChunk): boolean {
  const delta = chunk.choices[0]?.delta;
  return Boolean(delta && ((typeof delta.content === 'string' && delta.content !== '') || delta.tool_calls?.length || typeof delta.refusal === 'string'));
}

function errorCode(error: unknown): string | undefined {
  let current = error as { code?: string; cause?: unknown } | undefined;
  for (let depth = 0; current && depth < 4; depth++) {
    if (current.code) return current.code;
    current = current.cause as typeof current;
  }
  return undefined;
}

export async function attempt(options: AttemptOptions): Promise<AttemptResult> {
  const started = Date.now();
  const { target } = options;
  const controller = new AbortController();
  let stopped: StopReason | undefined;
  const stop = (reason: StopReason) => {
    if (stopped) return;
    stopped = reason;
    controller.abort(new Error(`llmroute: ${reason}`));
  };
  const onClientGone = () => stop('client');
  if (options.clientSignal.aborted) return { kind: 'client-gone', durationMs: 0 };
  options.clientSignal.addEventListener('abort', onClientGone, { once: true });

  const remaining = () => Math.max(0, options.deadline - Date.now());
  const deadlineTimer = setTimeout(() => stop('deadline'), remaining());
  let phaseTimer = setTimeout(() => stop('first-token'), Math.min(options.firstTokenMs, remaining()));
  let lastOutputAt = 0;
  // One idle timer per attempt rather than one per chunk (re-arming a timer for each of hundreds of chunks showed in
  // the profile): a chunk only notes the time, and the timer, when it fires, waits again for what is left of the limit.
  const watchIdle = () => {
    const quietMs = Date.now() - lastOutputAt;
    if (quietMs >= options.idleMs) stop('idle');
    else phaseTimer = setTimeout(watchIdle, options.idleMs - quietMs);
  };
  let firstTokenMs: number | undefined;
  let produced = false;
  let usage: Usage | undefined;
  let model: string | undefined;
  // The provider gave the answer's finish reason: what may still come is usage and the terminator, not content.
  let finished = false;
  // Lines the parser had to drop are counted however the attempt ends, a complete answer included.
  let parser: SseParser | undefined;

  const failed = (errorClass: ErrorClass, message: string, extra: Partial<UpstreamError> = {}): AttemptResult => ({
    kind: 'failed',
    error: { class: errorClass, provider: target.provider.name, message, ...extra },
    producedOutput: produced,
    ...(firstTokenMs !== undefined ? { firstTokenMs } : {}),
    durationMs: Date.now() - started,
    ...(usage ? { usage } : {}),
  });
  const completed = (): AttemptResult => ({ kind: 'complete', ...(usage ? { usage } : {}), firstTokenMs: firstTokenMs ?? Date.now() - started, durationMs: Date.now() - started, ...(model ? { model } : {}) });
  const stoppedResult = (): AttemptResult => {
    switch (stopped) {
      case 'client':
        return { kind: 'client-gone', durationMs: Date.now() - started };
      case 'idle':
        // Silence after the finish reason loses at most the usage: continuing a finished answer would add to it.
        if (finished) return completed();
        return failed('stream_stall', `no new tokens from provider "${target.provider.name}" for ${options.idleMs / 1000}s`);
      case 'first-token':
        return failed('timeout', `provider "${target.provider.name}" sent no first token within ${Math.round(Math.min(options.firstTokenMs, options.deadline - started) / 100) / 10}s`);
      default:
        return failed('timeout', `provider "${target.provider.name}" did not finish within the request's time limit`);
    }
  };

  try {
    const request = options.adapter.chatRequest({ ...options.request, stream: true, stream_options: { include_usage: true } }, target);
    let response;
    try {
      response = await options.transport.send(request, controller.signal);
    } catch (error) {
      if (stopped) return stoppedResult();
      const code = errorCode(error);
      return failed('connection_reset', `could not reach provider "${target.provider.name}": ${code ?? (error as Error).message}`, code ? { code } : {});
    }
    options.onHeaders?.(response.headers);
    if (response.status < 200 || response.status >= 300) {
      let text = '';
      try {
        text = await response.text();
      } catch {
        if (stopped) return stoppedResult();
      }
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // Not JSON: the adapter classifies the raw text.
      }
      const error = options.adapter.classify(response.status, response.headers, body, target);
      return { kind: 'failed', error, producedOutput: false, durationMs: Date.now() - started };
    }

    parser = new SseParser();
    const decoder = options.adapter.streamDecoder(target, options.request);
    const handle = (events: ReturnType<SseParser['push']>): AttemptResult | undefined => {
      for (const event of events) {
        let decoded;
        try {
          decoded = decoder.decode(event);
        } catch {
          options.onMalformed?.();
          continue;
        }
        switch (decoded.kind) {
          case 'chunks':
            for (const chunk of decoded.chunks) {
              if (chunk.usage) usage = chunk.usage;
              if (chunk.model) model = chunk.model;
              if (!carriesOutput(chunk) && !chunk.choices[0]?.finish_reason) continue;
              if (chunk.choices[0]?.finish_reason) finished = true;
              if (carriesOutput(chunk)) {
                lastOutputAt = Date.now();
                if (firstTokenMs === undefined) {
                  firstTokenMs = lastOutputAt - started;
                  clearTimeout(phaseTimer);
                  phaseTimer = setTimeout(watchIdle, options.idleMs);
                }
                produced = true;
              }
              options.onChunk(chunk);
            }
            break;
          case 'done':
            if (decoded.usage) usage = decoded.usage;
            return completed();
          case 'error': {
            const error = options.adapter.classify(decoded.status, { get: () => null }, decoded.body, target);
            return { kind: 'failed', error, producedOutput: produced, ...(firstTokenMs !== undefined ? { firstTokenMs } : {}), durationMs: Date.now() - started, ...(usage ? { usage } : {}) };
          }
          case 'ignore':
            break;
        }
      }
      return undefined;
    };

    try {
      for await (const bytes of response.body) {
        const result = handle(parser.push(bytes));
        if (result) {
          response.discard();
          return result;
        }
      }
      const result = handle(parser.end());
      if (result) return result;
      const ending = decoder.end?.();
      if (ending?.kind === 'done') {
        if (ending.usage) usage = ending.usage;
        return completed();
      }
    } catch (error) {
      if (stopped) return stoppedResult();
      if (finished) return completed();
      return failed(produced ? 'stream_cut' : 'connection_reset', `provider "${target.provider.name}" closed the connection mid-answer: ${errorCode(error) ?? (error as Error).message}`);
    }
    if (stopped) return stoppedResult();
    if (finished) return completed();
    return failed('stream_cut', `provider "${target.provider.name}" ended the stream without finishing the answer`);
  } finally {
    for (let i = 0; i < (parser?.skipped ?? 0); i++) options.onMalformed?.();
    clearTimeout(deadlineTimer);
    clearTimeout(phaseTimer);
    options.clientSignal.removeEventListener('abort', onClientGone);
  }
}
