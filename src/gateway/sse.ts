/**
 * Server-sent events, read incrementally off an upstream body and written back to clients. Every streamed token of
 * every request passes through here, so the parser scans each chunk once with `indexOf` and joins a line's pieces
 * only when the line is complete. It never throws: providers and proxies do send garbage, and a skipped line is
 * counted in `skipped` for the caller's metrics rather than allowed to kill a stream.
 */
import type { SseEvent } from './types.js';

const LF = 10;
const SPACE = 32;

/** Far above any real event; it only bounds the memory a provider that never ends a line can make us hold. */
export const DEFAULT_MAX_LINE_LENGTH = 16 * 1024 * 1024;

export interface SseParserOptions {
  /** Lines (and events' accumulated data) longer than this many characters are dropped and counted as skipped. */
  maxLineLength?: number;
}

/**
 * An incremental parser following the WHATWG event-stream rules: lines end with `\r\n`, `\n` or `\r`; a blank line
 * dispatches; `:` starts a comment; several `data:` lines join with `\n`; `id:` and `retry:` are accepted and unused.
 * Two deliberate departures: `end()` reports a final event that lacks its blank line (the spec would drop it, but
 * then a cut stream would silently lose its last event), and llama.cpp's non-standard `error: {...}` line is read
 * as an `error` event rather than ignored, so its message reaches the caller.
 */
export class SseParser {
  /** Lines dropped as malformed: unknown fields, and lines or events over the length limit. */
  skipped = 0;

  private readonly maxLineLength: number;
  private readonly decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  private atStart = true;
  /** A chunk ended with `\r`: a `\n` opening the next chunk belongs to the same line ending. */
  private pendingCR = false;
  /** Pieces of a line split across chunks, joined once the line ends. */
  private partial: string[] = [];
  private partialLength = 0;
  private discardingLine = false;
  private data: string[] = [];
  private dataLength = 0;
  /** Empty means the default type, which `SseEvent` leaves out. */
  private eventType = '';

  constructor(options: SseParserOptions = {}) {
    this.maxLineLength = options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
  }

  /** Characters held for a line not yet ended: never more than the limit, whatever a provider sends. */
  get buffered(): number {
    return this.partialLength;
  }

  /** Feeds one chunk (bytes may split a UTF-8 character; it is completed by the next chunk). */
  push(chunk: Uint8Array | string): SseEvent[] {
    const text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    const events: SseEvent[] = [];
    this.feed(text, events);
    return events;
  }

  /** The body ended: whatever is buffered is a last line, and a pending event is dispatched. Resets the parser. */
  end(): SseEvent[] {
    const events: SseEvent[] = [];
    this.feed(this.decoder.decode(), events);
    if (this.partial.length > 0 || this.discardingLine) this.line(this.takeLine('', 0, 0), events);
    this.dispatch(events);
    this.atStart = true;
    this.pendingCR = false;
    return events;
  }

  private feed(text: string, events: SseEvent[]): void {
    let start = 0;
    if (this.atStart && text.length > 0) {
      this.atStart = false;
      if (text.charCodeAt(0) === 0xfeff) start = 1;
    }
    if (this.pendingCR && start < text.length) {
      this.pendingCR = false;
      if (text.charCodeAt(start) === LF) start++;
    }
    const length = text.length;
    // Positions of the next `\n` and `\r`, refreshed only once passed, so each character is scanned once.
    let lf = text.indexOf('\n', start);
    let cr = text.indexOf('\r', start);
    while (lf !== -1 || cr !== -1) {
      let end: number;
      let next: number;
      if (cr === -1 || (lf !== -1 && lf < cr)) {
        end = lf;
        next = lf + 1;
      } else {
        end = cr;
        next = cr + 1;
        if (next === length) this.pendingCR = true;
        else if (text.charCodeAt(next) === LF) next++;
      }
      this.line(this.takeLine(text, start, end), events);
      start = next;
      if (lf !== -1 && lf < start) lf = text.indexOf('\n', start);
      if (cr !== -1 && cr < start) cr = text.indexOf('\r', start);
    }
    if (start < length) this.keepPartial(start === 0 ? text : text.slice(start));
  }

  /** The completed line, or undefined when it is over the limit (counted once, however it was chunked). */
  private takeLine(text: string, start: number, end: number): string | undefined {
    if (this.partial.length === 0 && !this.discardingLine) {
      if (end - start <= this.maxLineLength) return text.slice(start, end);
      this.skipped++;
      return undefined;
    }
    const tooLong = this.discardingLine || this.partialLength + (end - start) > this.maxLineLength;
    const line = tooLong ? undefined : this.partial.join('') + text.slice(start, end);
    this.partial = [];
    this.partialLength = 0;
    this.discardingLine = false;
    if (tooLong) this.skipped++;
    return line;
  }

  private keepPartial(piece: string): void {
    if (this.discardingLine) return;
    this.partialLength += piece.length;
    if (this.partialLength > this.maxLineLength) {
      this.partial = [];
      this.partialLength = 0;
      this.discardingLine = true;
      return;
    }
    this.partial.push(piece);
  }

  private line(line: string | undefined, events: SseEvent[]): void {
    if (line === undefined) return;
    if (line.length === 0) {
      this.dispatch(events);
      return;
    }
    const colon = line.indexOf(':');
    if (colon === 0) return;
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(line.charCodeAt(colon + 1) === SPACE ? colon + 2 : colon + 1);
    switch (field) {
      case 'data':
        this.appendData(value);
        return;
      case 'event':
        this.eventType = value;
        return;
      case 'error':
        // llama.cpp's server writes stream errors as `error: {json}`.
        this.eventType = 'error';
        this.appendData(value);
        return;
      case 'id':
      case 'retry':
        return;
      default:
        this.skipped++;
    }
  }

  private appendData(value: string): void {
    this.data.push(value);
    this.dataLength += value.length + 1;
  }

  private dispatch(events: SseEvent[]): void {
    if (this.data.length > 0) {
      if (this.dataLength > this.maxLineLength) this.skipped++;
      else {
        const data = this.data.length === 1 ? (this.data[0] as string) : this.data.join('\n');
        events.push(this.eventType === '' ? { data } : { event: this.eventType, data });
      }
    }
    this.data = [];
    this.dataLength = 0;
    this.eventType = '';
  }
}

/**
 * One event in wire form. Non-string data is JSON-encoded (JSON never contains a raw line break); a string with line
 * breaks becomes several `data:` lines, which a client's parser joins back with `\n`. `event` must be a single line.
 */
export function formatSse(data: unknown, event?: string): string {
  const text = typeof data === 'string' ? data : JSON.stringify(data);
  const head = event === undefined ? '' : `event: ${event}\n`;
  if (!text.includes('\n') && !text.includes('\r')) return `${head}data: ${text}\n\n`;
  return `${head}data: ${text.split(/\r\n|\r|\n/).join('\ndata: ')}\n\n`;
}
