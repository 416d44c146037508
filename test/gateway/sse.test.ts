import { describe, expect, it } from '@jest/globals';
import { formatSse, SseParser } from '../../src/gateway/sse.js';
import type { SseEvent } from '../../src/gateway/types.js';

/** Everything a parser makes of the chunks, `end()` included. */
function parseAll(chunks: (string | Uint8Array)[], parser = new SseParser()): SseEvent[] {
  return [...chunks.flatMap((chunk) => parser.push(chunk)), ...parser.end()];
}

const bytes = (text: string) => new TextEncoder().encode(text);

/** A stream with every feature at once: events, comments, CRLF, multi-line data, multi-byte characters. */
const MIXED =
  ': keep-alive comment\r\n' +
  'event: message_start\r\n' +
  'data: {"type":"message_start","text":"héllo 日本 🚀"}\r\n' +
  '\r\n' +
  'data: line one\n' +
  'data: line two\n' +
  'id: 7\n' +
  'retry: 1000\n' +
  '\n' +
  'data:no space\r' +
  '\r' +
  'data: [DONE]\n\n';

const MIXED_EVENTS: SseEvent[] = [
  { event: 'message_start', data: '{"type":"message_start","text":"héllo 日本 🚀"}' },
  { data: 'line one\nline two' },
  { data: 'no space' },
  { data: '[DONE]' },
];

describe('SseParser', () => {
  it('reads OpenAI-style data events', () => {
    expect(parseAll(['data: {"a":1}\n\ndata: [DONE]\n\n'])).toEqual([{ data: '{"a":1}' }, { data: '[DONE]' }]);
  });

  it('reads Anthropic-style named events', () => {
    expect(parseAll(['event: ping\ndata: {"type": "ping"}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n'])).toEqual([
      { event: 'ping', data: '{"type": "ping"}' },
      { event: 'message_stop', data: '{"type":"message_stop"}' },
    ]);
  });

  it('handles LF, CRLF and lone CR line endings, comments, multi-line data, id and retry', () => {
    const parser = new SseParser();
    expect(parseAll([MIXED], parser)).toEqual(MIXED_EVENTS);
    expect(parser.skipped).toBe(0);
  });

  it('gives the same events however the bytes are split, at every position', () => {
    const whole = bytes(MIXED);
    for (let i = 0; i <= whole.length; i++) {
      expect([i, parseAll([whole.subarray(0, i), whole.subarray(i)])]).toEqual([i, MIXED_EVENTS]);
    }
  });

  it('gives the same events when split into three at every pair of positions', () => {
    const whole = bytes(MIXED);
    for (let i = 0; i <= whole.length; i += 3) {
      for (let j = i; j <= whole.length; j++) {
        expect([i, j, parseAll([whole.subarray(0, i), whole.subarray(i, j), whole.subarray(j)])]).toEqual([i, j, MIXED_EVENTS]);
      }
    }
  });

  it('gives the same events fed one byte, or one character, at a time', () => {
    expect(parseAll(Array.from(bytes(MIXED), (b) => Uint8Array.of(b)))).toEqual(MIXED_EVENTS);
    expect(parseAll([...MIXED])).toEqual(MIXED_EVENTS);
  });

  it('treats CR then LF across a chunk boundary as one line ending, not an extra blank line', () => {
    // Were the LF read as a second line ending, the blank line would dispatch `a` and `b` separately.
    expect(parseAll(['data: a\r', '\ndata: b\r', '\n\r', '\n'])).toEqual([{ data: 'a\nb' }]);
  });

  it('strips one space after the colon and keeps the rest', () => {
    expect(parseAll(['data:  two\n\ndata:\n\n'])).toEqual([{ data: ' two' }, { data: '' }]);
  });

  it('reports a final event that has no blank line after it, and a final line with no line ending', () => {
    expect(parseAll(['data: a\n\ndata: last\n'])).toEqual([{ data: 'a' }, { data: 'last' }]);
    expect(parseAll(['data: a\n\nevent: e\ndata: {"cut":'])).toEqual([{ data: 'a' }, { event: 'e', data: '{"cut":' }]);
  });

  it('reports nothing at the end when nothing is pending, and can be reused after end()', () => {
    const parser = new SseParser();
    expect(parseAll(['data: a\n\n'], parser)).toEqual([{ data: 'a' }]);
    expect(parser.end()).toEqual([]);
    expect(parseAll(['data: b\n\n'], parser)).toEqual([{ data: 'b' }]);
  });

  it('does not dispatch an event that has no data, and resets the event name after each dispatch', () => {
    expect(parseAll(['event: lonely\n\n\n\ndata: x\n\n'])).toEqual([{ data: 'x' }]);
  });

  it('reads an empty event name as the default type', () => {
    expect(parseAll(['event:\ndata: x\n\n'])).toEqual([{ data: 'x' }]);
  });

  it('strips a byte-order mark at the start of the stream only', () => {
    expect(parseAll([Uint8Array.of(0xef, 0xbb), Uint8Array.of(0xbf, ...bytes('data: a\n\n'))])).toEqual([{ data: 'a' }]);
    expect(parseAll(['\uFEFFdata: b\n\n'])).toEqual([{ data: 'b' }]);
    expect(parseAll(['data: \uFEFFc\n\n'])).toEqual([{ data: '\uFEFFc' }]);
  });

  it("reads llama.cpp's non-standard `error:` line as an error event", () => {
    expect(parseAll(['error: {"code":500,"message":"boom","type":"server_error"}\n\n'])).toEqual([
      { event: 'error', data: '{"code":500,"message":"boom","type":"server_error"}' },
    ]);
  });

  it('skips and counts malformed lines without losing the events around them', () => {
    const parser = new SseParser();
    const events = parseAll(['data: a\n\nthis line has no colon\nbogus: field\n: a comment is fine\ndata: b\n\n'], parser);
    expect(events).toEqual([{ data: 'a' }, { data: 'b' }]);
    expect(parser.skipped).toBe(2);
  });

  it('replaces invalid UTF-8 instead of throwing', () => {
    expect(parseAll([Uint8Array.of(...bytes('data: '), 0xff, 0xfe, ...bytes('ok\n\n'))])).toEqual([{ data: '\uFFFD\uFFFDok' }]);
  });

  it('never throws on random garbage and keeps reading the valid events that follow it', () => {
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 200; round++) {
      const garbage = Uint8Array.from({ length: 1 + Math.floor(random() * 300) }, () => Math.floor(random() * 256));
      const parser = new SseParser();
      const events = [...parser.push(garbage), ...parser.push('\n\ndata: after\n\n'), ...parser.end()];
      expect(events.at(-1)).toEqual({ data: 'after' });
    }
  });

  it('drops a line longer than the limit, whole or in pieces, counts it once, and reads on', () => {
    const long = `data: ${'x'.repeat(100)}\n\n`;
    for (const chunks of [[long], [...long], [long.slice(0, 50), long.slice(50)]]) {
      const parser = new SseParser({ maxLineLength: 64 });
      expect(parseAll([...chunks, 'data: short\n\n'], parser)).toEqual([{ data: 'short' }]);
      expect(parser.skipped).toBe(1);
    }
  });

  it('holds no more than the limit for a line that never ends', () => {
    const parser = new SseParser({ maxLineLength: 64 });
    parser.push('data: ');
    expect(parser.buffered).toBe(6);
    for (let i = 0; i < 1000; i++) parser.push('x'.repeat(10));
    expect(parser.buffered).toBe(0);
    expect(parser.push('\ndata: next\n\n')).toEqual([{ data: 'next' }]);
    expect(parser.skipped).toBe(1);
  });

  it('drops an event whose data lines add up to more than the limit', () => {
    const parser = new SseParser({ maxLineLength: 64 });
    const many = `${'data: 0123456789\n'.repeat(10)}\n`;
    expect(parseAll([many, 'data: ok\n\n'], parser)).toEqual([{ data: 'ok' }]);
    expect(parser.skipped).toBe(1);
  });

  it('keeps a line exactly at the limit', () => {
    const line = `data: ${'y'.repeat(58)}`;
    expect(line).toHaveLength(64);
    expect(parseAll([`${line}\n\n`], new SseParser({ maxLineLength: 64 }))).toEqual([{ data: 'y'.repeat(58) }]);
  });
});

describe('formatSse', () => {
  it('writes JSON data, with and without an event name', () => {
    expect(formatSse({ a: 'b\nc' })).toBe('data: {"a":"b\\nc"}\n\n');
    expect(formatSse({ type: 'ping' }, 'ping')).toBe('event: ping\ndata: {"type":"ping"}\n\n');
    expect(formatSse('[DONE]')).toBe('data: [DONE]\n\n');
  });

  it('splits text with line breaks into data lines that parse back to the same text', () => {
    const text = 'one\ntwo\r\nthree\rfour';
    expect(formatSse(text, 'error')).toBe('event: error\ndata: one\ndata: two\ndata: three\ndata: four\n\n');
    expect(parseAll([formatSse(text, 'error')])).toEqual([{ event: 'error', data: 'one\ntwo\nthree\nfour' }]);
  });
});
