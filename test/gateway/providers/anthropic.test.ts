import { describe, expect, it } from '@jest/globals';
import type { CompiledProvider } from '../../../src/api/gateway-config.js';
import { anthropic, DEFAULT_MAX_TOKENS } from '../../../src/gateway/providers/anthropic.js';
import { SseParser } from '../../../src/gateway/sse.js';
import type { ChatChunk, ChatRequest, DecodedEvent, StreamDecoder, Target } from '../../../src/gateway/types.js';

const provider: CompiledProvider = { name: 'claude', type: 'anthropic', keyFiles: ['/var/run/llmroute/keys/anthropic/0'], keyRequired: true };
const target = (over: Partial<Target> = {}): Target => ({ provider, model: 'claude-sonnet-4-20250514', key: 'sk-ant-api03-test', ...over });
const bodyOf = (request: ChatRequest) => JSON.parse(anthropic.chatRequest(request, target()).body ?? 'null') as Record<string, unknown>;
const user = (content: string): ChatRequest['messages'][number] => ({ role: 'user', content });

function decodeAll(decoder: StreamDecoder, raw: string): DecodedEvent[] {
  const parser = new SseParser();
  return [...parser.push(raw), ...parser.end()].map((event) => decoder.decode(event));
}
const chunksOf = (decoded: DecodedEvent[]): ChatChunk[] => decoded.flatMap((d) => (d.kind === 'chunks' ? d.chunks : []));

describe('anthropic chatRequest', () => {
  it('posts to /v1/messages with x-api-key and anthropic-version, and no Authorization', () => {
    const request = anthropic.chatRequest({ model: 'chat', messages: [user('Hi')] }, target());
    expect(request.url).toBe('https://api.anthropic.com/v1/messages');
    expect(request.headers).toEqual({ 'content-type': 'application/json', 'x-api-key': 'sk-ant-api03-test', 'anthropic-version': '2023-06-01' });
    expect(anthropic.chatRequest({ model: 'chat', messages: [user('Hi')] }, target({ provider: { ...provider, baseURL: 'http://127.0.0.1:9999/' } })).url).toBe('http://127.0.0.1:9999/v1/messages');
  });

  it('sends the target model, a required max_tokens and only the fields Anthropic knows', () => {
    const body = bodyOf({ model: 'chat', messages: [user('Hi')], response_format: { type: 'json_object' }, seed: 1, logit_bias: {}, n: 1 });
    expect(body).toEqual({ model: 'claude-sonnet-4-20250514', max_tokens: DEFAULT_MAX_TOKENS, messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }] });
  });

  it('takes max_tokens from max_completion_tokens, then max_tokens', () => {
    expect(bodyOf({ model: 'chat', messages: [user('Hi')], max_tokens: 100, max_completion_tokens: 200 }).max_tokens).toBe(200);
    expect(bodyOf({ model: 'chat', messages: [user('Hi')], max_tokens: 100 }).max_tokens).toBe(100);
  });

  it('moves system and developer messages to the top-level system prompt', () => {
    const body = bodyOf({
      model: 'chat',
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'developer', content: [{ type: 'text', text: 'Answer in French.' }] }, user('Hi')],
    });
    expect(body.system).toBe('Be brief.\n\nAnswer in French.');
    expect(body.messages).toEqual([{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }]);
  });

  it('maps stop, temperature, top_p, user and stream', () => {
    expect(bodyOf({ model: 'chat', messages: [user('Hi')], stop: 'END', temperature: 0.3, user: 'user-42', stream: true })).toMatchObject({
      stop_sequences: ['END'],
      temperature: 0.3,
      metadata: { user_id: 'user-42' },
      stream: true,
    });
    expect(bodyOf({ model: 'chat', messages: [user('Hi')], stop: ['a', 'b'], top_p: 0.9 })).toMatchObject({ stop_sequences: ['a', 'b'], top_p: 0.9 });
  });

  it("clamps temperature to Anthropic's range and drops top_p when temperature is set", () => {
    const body = bodyOf({ model: 'chat', messages: [user('Hi')], temperature: 1.6, top_p: 0.5 });
    expect(body.temperature).toBe(1);
    expect(body).not.toHaveProperty('top_p');
  });

  it('translates tools and every tool_choice form', () => {
    const tools: ChatRequest['tools'] = [
      { type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } },
      { type: 'function', function: { name: 'now' } },
    ];
    const with_ = (tool_choice: unknown, extra: Partial<ChatRequest> = {}) => bodyOf({ model: 'chat', messages: [user('Hi')], tools, tool_choice, ...extra });
    expect(with_(undefined).tools).toEqual([
      { name: 'get_weather', description: 'Weather for a city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
      { name: 'now', input_schema: { type: 'object', properties: {} } },
    ]);
    expect(with_(undefined)).not.toHaveProperty('tool_choice');
    expect(with_('auto').tool_choice).toEqual({ type: 'auto' });
    expect(with_('none').tool_choice).toEqual({ type: 'none' });
    expect(with_('required').tool_choice).toEqual({ type: 'any' });
    expect(with_({ type: 'function', function: { name: 'now' } }).tool_choice).toEqual({ type: 'tool', name: 'now' });
    expect(with_(undefined, { parallel_tool_calls: false }).tool_choice).toEqual({ type: 'auto', disable_parallel_tool_use: true });
    expect(with_('required', { parallel_tool_calls: false }).tool_choice).toEqual({ type: 'any', disable_parallel_tool_use: true });
  });

  it('sends no tool_choice without tools, which Anthropic would reject', () => {
    expect(bodyOf({ model: 'chat', messages: [user('Hi')], tool_choice: 'auto' })).not.toHaveProperty('tool_choice');
  });

  it('turns assistant tool calls into tool_use blocks and tool messages into tool_result blocks of one user turn', () => {
    const body = bodyOf({
      model: 'chat',
      messages: [
        user('Weather in Paris and Rome?'),
        {
          role: 'assistant',
          content: 'Checking both.',
          tool_calls: [
            { id: 'toolu_01A', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
            { id: 'toolu_01B', type: 'function', function: { name: 'get_weather', arguments: '{"city":' } },
          ],
        },
        { role: 'tool', tool_call_id: 'toolu_01A', content: '18°C, sunny' },
        { role: 'tool', tool_call_id: 'toolu_01B', content: [{ type: 'text', text: '24°C' }] },
        user('And tomorrow?'),
      ],
    });
    expect(body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Weather in Paris and Rome?' }] },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Checking both.' },
          { type: 'tool_use', id: 'toolu_01A', name: 'get_weather', input: { city: 'Paris' } },
          // Invalid JSON from the model cannot be sent as input; an empty object keeps the turn valid.
          { type: 'tool_use', id: 'toolu_01B', name: 'get_weather', input: {} },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_01A', content: '18°C, sunny' },
          { type: 'tool_result', tool_use_id: 'toolu_01B', content: '24°C' },
          { type: 'text', text: 'And tomorrow?' },
        ],
      },
    ]);
  });

  it('translates image parts, drops parts it cannot translate and turns with nothing left', () => {
    const body = bodyOf({
      model: 'chat',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is this?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
            { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg', detail: 'high' } },
            { type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } },
            { type: 'text', text: '' },
          ],
        },
        { role: 'assistant', content: '' },
        { role: 'assistant', content: null },
      ],
    });
    expect(body.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'What is this?' },
          { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
          { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
        ],
      },
    ]);
  });

  it('sends a trailing assistant message as a prefill, without the trailing whitespace Anthropic rejects', () => {
    expect(bodyOf({ model: 'chat', messages: [user('Count to 5'), { role: 'assistant', content: '1, 2, ' }] }).messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Count to 5' }] },
      { role: 'assistant', content: [{ type: 'text', text: '1, 2,' }] },
    ]);
    expect(bodyOf({ model: 'chat', messages: [user('Hi'), { role: 'assistant', content: '  \n' }] }).messages).toEqual([{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }]);
    expect(anthropic.supportsPrefill).toBe(true);
  });

  it('has no embeddings API', () => {
    expect(anthropic.embeddingsRequest).toBeUndefined();
  });
});

describe('anthropic parseChat', () => {
  const message = {
    id: 'msg_01Aq9w938a90dw8q',
    type: 'message',
    role: 'assistant',
    model: 'claude-sonnet-4-20250514',
    content: [
      { type: 'text', text: 'Let me check' },
      { type: 'text', text: ' the weather.' },
      { type: 'tool_use', id: 'toolu_01A09q90qw90lq917835lq9', name: 'get_weather', input: { location: 'San Francisco, CA', unit: 'celsius' } },
    ],
    stop_reason: 'tool_use',
    stop_sequence: null,
    usage: { input_tokens: 2095, output_tokens: 503, cache_creation_input_tokens: 100, cache_read_input_tokens: 1000 },
  };

  it('returns an OpenAI completion with text, tool calls, finish reason, usage and the model that answered', () => {
    const completion = anthropic.parseChat(message, target({ model: 'claude-sonnet-4-0' }));
    expect(completion).toMatchObject({
      id: 'msg_01Aq9w938a90dw8q',
      object: 'chat.completion',
      model: 'claude-sonnet-4-20250514',
      choices: [
        {
          index: 0,
          finish_reason: 'tool_calls',
          message: {
            role: 'assistant',
            content: 'Let me check the weather.',
            tool_calls: [{ id: 'toolu_01A09q90qw90lq917835lq9', type: 'function', function: { name: 'get_weather', arguments: '{"location":"San Francisco, CA","unit":"celsius"}' } }],
          },
        },
      ],
      // Cache writes and reads count as prompt tokens, as in OpenAI's usage.
      usage: { prompt_tokens: 3195, completion_tokens: 503, total_tokens: 3698 },
    });
    expect(completion.created).toBeGreaterThan(1_700_000_000);
  });

  it('gives null content when the answer is only tool calls, and no tool_calls key when there are none', () => {
    expect(anthropic.parseChat({ ...message, content: [message.content[2]] }, target()).choices[0]?.message.content).toBeNull();
    expect(anthropic.parseChat({ ...message, content: [message.content[0]], stop_reason: 'end_turn' }, target()).choices[0]?.message).toEqual({ role: 'assistant', content: 'Let me check' });
  });

  it.each([
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop'],
    ['max_tokens', 'length'],
    ['tool_use', 'tool_calls'],
    ['refusal', 'content_filter'],
    ['pause_turn', 'stop'],
  ])('maps stop_reason %s to finish_reason %s', (stopReason, finish) => {
    expect(anthropic.parseChat({ ...message, stop_reason: stopReason }, target()).choices[0]?.finish_reason).toBe(finish);
  });

  it('throws a clear error for a body that is not a message', () => {
    expect(() => anthropic.parseChat({ type: 'error', error: { type: 'api_error', message: 'x' } }, target())).toThrow('claude: the response is not an Anthropic message');
  });
});

/** A recorded Anthropic stream: text, then two tool calls (content blocks 1 and 2), with a ping in between. */
const STREAM = `event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", checking both."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"location\\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" \\"Paris\\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_02","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\\"location\\": \\"Rome\\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

`;

describe('anthropic streamDecoder', () => {
  const request: ChatRequest = { model: 'chat', messages: [user('Hi')], stream: true };

  it('translates a stream with text and tool_use into OpenAI chunks and completes with the usage', () => {
    const decoded = decodeAll(anthropic.streamDecoder(target(), request), STREAM);
    const chunks = chunksOf(decoded);
    expect(chunks.every((c) => c.id === 'msg_014p7gG3wDgGV9EUtLvnow3U' && c.model === 'claude-sonnet-4-20250514' && c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[0]?.choices[0]?.delta).toEqual({ role: 'assistant', content: '' });
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Okay, checking both.');

    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls.filter((c) => c.id !== undefined)).toEqual([
      { index: 0, id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', type: 'function', function: { name: 'get_weather', arguments: '' } },
      { index: 1, id: 'toolu_02', type: 'function', function: { name: 'get_weather', arguments: '' } },
    ]);
    const args = (index: number) => calls.filter((c) => c.index === index).map((c) => c.function?.arguments).join('');
    expect(args(0)).toBe('{"location": "Paris"}');
    expect(args(1)).toBe('{"location": "Rome"}');

    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('tool_calls');
    expect(decoded.at(-1)).toEqual({ kind: 'done', usage: { prompt_tokens: 472, completion_tokens: 89, total_tokens: 561 } });
    expect(decoded.filter((d) => d.kind === 'ignore')).toHaveLength(6); // ping, three block stops, the empty text start and the empty json delta
  });

  it('adds an OpenAI usage chunk after the finish when the client asked for usage', () => {
    const chunks = chunksOf(decodeAll(anthropic.streamDecoder(target(), { ...request, stream_options: { include_usage: true } }), STREAM));
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 472, completion_tokens: 89, total_tokens: 561 } });
    expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe('tool_calls');
  });

  it('maps end_turn and max_tokens in message_delta', () => {
    const ending = (stop: string) =>
      chunksOf(
        decodeAll(
          anthropic.streamDecoder(target(), request),
          `event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"${stop}","stop_sequence":null},"usage":{"output_tokens":3}}\n\n`,
        ),
      )[0]?.choices[0]?.finish_reason;
    expect(ending('end_turn')).toBe('stop');
    expect(ending('max_tokens')).toBe('length');
  });

  it('turns an error event into an error the classifier reads as overloaded', () => {
    const [decoded] = decodeAll(anthropic.streamDecoder(target(), request), 'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n');
    expect(decoded).toEqual({ kind: 'error', status: 529, body: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } });
    if (decoded?.kind !== 'error') throw new Error('expected an error');
    expect(anthropic.classify(decoded.status, new Headers(), decoded.body, target()).class).toBe('overloaded');
  });

  it('reports data that is not JSON as an error, and ignores events it does not know', () => {
    const decoder = anthropic.streamDecoder(target(), request);
    expect(decodeAll(decoder, 'event: content_block_delta\ndata: {"type":"content_block_del\n\n')[0]).toMatchObject({ kind: 'error', status: 502 });
    expect(decodeAll(decoder, 'event: future_event\ndata: {"type":"future_event"}\n\n')).toEqual([{ kind: 'ignore' }]);
    expect(decodeAll(decoder, 'event: message_stop\ndata: {"type":"message_stop"}\n\n')).toEqual([{ kind: 'done' }]);
  });
});

describe('anthropic classify', () => {
  const error = (type: string, message: string) => ({ type: 'error', error: { type, message }, request_id: 'req_011CSHoEeqs5C35K2UUqR7Fy' });
  const classify = (status: number, body: unknown, values: Record<string, string> = {}) => anthropic.classify(status, new Headers(values), body, target());

  it('classifies overload, rate limits and quota', () => {
    expect(classify(529, error('overloaded_error', 'Overloaded'))).toMatchObject({ class: 'overloaded', status: 529, code: 'overloaded_error' });
    expect(classify(429, error('rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit'), { 'retry-after': '8' })).toMatchObject({ class: 'rate_limited', retryAfterMs: 8000 });
    const credit = error('invalid_request_error', 'Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.');
    expect(classify(400, credit).class).toBe('quota_exhausted');
    expect(classify(400, error('invalid_request_error', 'You have reached your specified API usage limits. You will regain access on 2025-09-01 at 00:00 UTC.')).class).toBe('quota_exhausted');
    expect(classify(402, error('billing_error', 'There is an issue with your billing.')).class).toBe('quota_exhausted');
    expect(classify(403, error('billing_error', 'Usage is blocked due to insufficient credits.')).class).toBe('quota_exhausted');
  });

  it('classifies auth, context length, content filtering and other client errors', () => {
    expect(classify(401, error('authentication_error', 'invalid x-api-key')).class).toBe('auth_failed');
    expect(classify(403, error('permission_error', 'Your API key does not have permission to use the specified resource.')).class).toBe('auth_failed');
    expect(classify(400, error('invalid_request_error', 'prompt is too long: 208310 tokens > 200000 maximum')).class).toBe('context_length_exceeded');
    expect(classify(400, error('invalid_request_error', 'input length and `max_tokens` exceed context limit: 197000 + 8192 > 200000, decrease input length or `max_tokens` and try again')).class).toBe(
      'context_length_exceeded',
    );
    expect(classify(400, error('invalid_request_error', 'Output blocked by content filtering policy')).class).toBe('content_filtered');
    expect(classify(400, error('invalid_request_error', 'messages: text content blocks must be non-empty')).class).toBe('bad_request');
    expect(classify(404, error('not_found_error', 'model: claude-4-nonexistent')).class).toBe('bad_request');
    expect(classify(413, error('request_too_large', 'Request exceeds the maximum allowed number of bytes.')).class).toBe('bad_request');
  });

  it('classifies server errors', () => {
    expect(classify(500, error('api_error', 'Internal server error'))).toMatchObject({ class: 'server_error', code: 'api_error' });
    expect(classify(504, error('timeout_error', 'Request timed out')).class).toBe('server_error');
    expect(classify(502, '<html>Bad gateway</html>').class).toBe('server_error');
  });
});
