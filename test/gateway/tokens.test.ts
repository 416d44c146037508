/**
 * Prompt token counts: the encodings against OpenAI's own published counts, the chat format against the cookbook's
 * examples (checked there against the API's reported usage), the choice of tokenizer per provider and model, the
 * Anthropic and byte estimates, when tokenizing is skipped, and the 400 for a prompt over `maxInputTokens` through
 * a real gateway and the OpenAI SDK.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import OpenAI from 'openai';
import type { ChatRequest } from '../../src/gateway/types.js';
import { countPromptTokens, EXACT_COUNT_MAX_BYTES, estimateRequestTokens, inputLimitError, needsTokenizer, type PromptCount } from '../../src/gateway/tokens.js';
import { IMAGE_TOKENS } from '../../src/gateway/tokenizers/chat-format.js';
import { tokenCounter } from '../../src/gateway/tokenizers/encodings.js';
import { BYTE_ESTIMATE, CLAUDE_FACTOR, CLAUDE_TOOLS_PROMPT, countingFor, countingForModel, admissionCounting, encodingsFor, type Encoding } from '../../src/gateway/tokenizers/families.js';
import { compileEnvironment } from '../../src/api/compile.js';
import { buildRoute, type TestGatewayOptions } from '../support/gateway.js';
import { CLAUDE, GPT, gatewayFor, resetFakes, startFakes, stopFakes, TIMEOUTS, type Fakes } from './e2e/fixtures.js';

const count = async (encoding: Encoding, text: string) => (await tokenCounter(encoding))(text);
const chat = (messages: unknown[], extra: Partial<ChatRequest> = {}): ChatRequest => ({ model: 'chat', messages, ...extra }) as ChatRequest;
const o200k = countingFor('openai', GPT);

describe('encodings', () => {
  // The cookbook's examples, with the counts tiktoken printed there.
  it.each([
    ['hello world', 2, 2],
    ['tiktoken is great!', 6, 6],
    ['antidisestablishmentarianism', 6, 6],
    ['2 + 2 = 4', 7, 7],
    ['お誕生日おめでとう', 8, 9],
  ])('%s is %i tokens in o200k_base and %i in cl100k_base', async (text, inO200k, inCl100k) => {
    expect(await count('o200k_base', text)).toBe(inO200k);
    expect(await count('cl100k_base', text)).toBe(inCl100k);
  });

  it('counts the text of a special token as text instead of throwing', async () => {
    expect(await count('o200k_base', 'a <|endoftext|> b')).toBeGreaterThan(3);
  });
});

describe('chat format', () => {
  const jargon = [
    { role: 'system', content: 'You are a helpful, pattern-following assistant that translates corporate jargon into plain English.' },
    { role: 'system', name: 'example_user', content: 'New synergies will help drive top-line growth.' },
    { role: 'system', name: 'example_assistant', content: 'Things working well together will increase revenue.' },
    { role: 'system', name: 'example_user', content: "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage." },
    { role: 'system', name: 'example_assistant', content: "Let's talk later when we're less busy about how to do better." },
    { role: 'user', content: "This late pivot means we don't have time to boil the ocean for the client deliverable." },
  ];
  const weatherTools = [
    {
      type: 'function' as const,
      function: {
        name: 'get_current_weather',
        description: 'Get the current weather in a given location',
        parameters: {
          type: 'object',
          properties: {
            location: { type: 'string', description: 'The city and state, e.g. San Francisco, CA' },
            unit: { type: 'string', description: 'The unit of temperature to return', enum: ['celsius', 'fahrenheit'] },
          },
          required: ['location'],
        },
      },
    },
  ];
  const weather = [
    { role: 'system', content: 'You are a helpful assistant that can answer to questions about the weather.' },
    { role: 'user', content: "What's the weather like in San Francisco?" },
  ];

  // "N prompt tokens counted by the OpenAI API" in the cookbook's sections 6 and 7.
  it.each([
    ['gpt-4o-2024-08-06', 124, 101],
    ['gpt-4o-mini-2024-07-18', 124, 101],
    ['gpt-4-0613', 129, 105],
    ['gpt-3.5-turbo-0125', 129, 105],
  ])('%s: the cookbook messages are %i tokens, its tools example %i', async (model, messages, withTools) => {
    const counting = countingFor('openai', model);
    expect(await countPromptTokens(chat(jargon), counting, undefined)).toEqual({ tokens: messages, exact: true, how: `counted with ${counting.encoding}` });
    const tools = await countPromptTokens(chat(weather, { tools: weatherTools }), counting, undefined);
    expect(tools).toEqual({ tokens: withTools, exact: false, how: `estimated with ${counting.encoding}; approximated: tool definitions` });
  });

  it('approximates what has no published rule, names it, and reports the count as an estimate', async () => {
    const text = await countPromptTokens(chat([{ role: 'user', content: 'hello world' }]), o200k, undefined);
    expect(text).toMatchObject({ tokens: 3 + 1 + 2 + 3, exact: true });
    const image = await countPromptTokens(chat([{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }] }]), o200k, undefined);
    expect(image).toEqual({ tokens: 3 + 1 + IMAGE_TOKENS + 3, exact: false, how: 'estimated with o200k_base; approximated: images' });
    const parts = await countPromptTokens(chat([{ role: 'user', content: [{ type: 'text', text: 'hello' }, { type: 'text', text: ' world' }] }]), o200k, undefined);
    expect(parts).toMatchObject({ tokens: 3 + 1 + 2 + 3, exact: false, how: expect.stringContaining('content in several parts') });
    const call = { id: 'c1', type: 'function', function: { name: 'lookup', arguments: '{"q":"hello world"}' } };
    const toolTurn = await countPromptTokens(chat([{ role: 'assistant', content: null, tool_calls: [call] }, { role: 'tool', tool_call_id: 'c1', content: 'hello world' }]), o200k, undefined);
    expect(toolTurn.exact).toBe(false);
    expect(toolTurn.how).toContain('tool calls, tool results');
    expect(toolTurn.tokens).toBeGreaterThan(text.tokens + 3 + 1);
  });

  it('survives malformed parts a client may send', async () => {
    const odd = chat([{ role: 'assistant', content: [null, 7, { type: 'input_audio' }], tool_calls: [null, { function: 3 }] }], { tools: [null, { function: { parameters: { properties: { x: null } } } }] as never });
    await expect(countPromptTokens(odd, o200k, undefined)).resolves.toMatchObject({ exact: false });
  });
});

describe('choosing the tokenizer', () => {
  it.each([
    ['openai', 'gpt-4o-2024-08-06', 'o200k_base', true],
    ['openai', 'gpt-4o-mini', 'o200k_base', true],
    ['openai', 'chatgpt-4o-latest', 'o200k_base', true],
    ['openai', 'gpt-4.1-2025-04-14', 'o200k_base', true],
    ['openai', 'gpt-5', 'o200k_base', true],
    ['openai', 'gpt-5.1-2025-11-13', 'o200k_base', true],
    ['openai', 'o1-2024-12-17', 'o200k_base', true],
    ['openai', 'o3-mini', 'o200k_base', true],
    ['openai', 'o4-mini-2025-04-16', 'o200k_base', true],
    ['openai', 'ft:gpt-4o-mini-2024-07-18:acme::abc123', 'o200k_base', true],
    ['openai', 'gpt-4-0613', 'cl100k_base', true],
    ['openai', 'gpt-4-turbo-2024-04-09', 'cl100k_base', true],
    ['openai', 'gpt-3.5-turbo-0125', 'cl100k_base', true],
    ['openai', 'text-embedding-3-small', 'cl100k_base', true],
    ['azure-openai', 'gpt-4o-2024-08-06', 'o200k_base', true],
    ['azure-openai', 'gpt-35-turbo', 'cl100k_base', true],
    ['openai', 'gpt-7-preview', 'o200k_base', false],
    ['openai', 'o1x', 'o200k_base', false],
    ['anthropic', CLAUDE, 'o200k_base', false],
    ['openai-compatible', 'gpt-4o-2024-08-06', undefined, false],
    ['mock', 'mock-2025-01-01', undefined, false],
  ] as const)('%s %s: %s, exact %s', (type, model, encoding, exact) => {
    const counting = countingFor(type, model);
    expect({ encoding: counting.encoding, exact: counting.exact }).toEqual({ encoding, exact });
  });

  it("counts for the model's primary step", () => {
    const providers = [
      { name: 'claude', type: 'anthropic' as const },
      { name: 'openai', type: 'openai' as const },
    ];
    expect(countingForModel({ providers } as never, { fallback: [{ provider: 'claude', model: CLAUDE }, { provider: 'openai', model: GPT }] })).toMatchObject({ factor: CLAUDE_FACTOR });
    expect(countingForModel({ providers } as never, { fallback: [{ provider: 'openai', model: GPT }, { provider: 'claude', model: CLAUDE }] })).toMatchObject({ encoding: 'o200k_base', exact: true, factor: 1 });
    expect(countingForModel({ providers } as never, { fallback: [{ provider: 'gone', model: GPT }] })).toBe(BYTE_ESTIMATE);
  });

  const compiled = (options: Partial<TestGatewayOptions> = {}) =>
    compileEnvironment(
      buildRoute({
        providers: [
          { name: 'openai', type: 'openai' },
          { name: 'local', type: 'openai-compatible', baseURL: 'http://vllm.internal:8000/v1' },
        ],
        models: [
          { name: 'chat', pin: GPT, maxInputTokens: 8000, fallback: [{ provider: 'openai' }] },
          { name: 'local', pin: 'llama-3.1-8b', maxInputTokens: 8000, fallback: [{ provider: 'local' }] },
        ],
        ...options,
      }),
      'test',
      { secretsRoot: '/secrets' },
    );

  it('loads, before serving, the encodings of every model and of what each flag pins', () => {
    expect(encodingsFor(compiled())).toEqual(new Set(['o200k_base']));
    expect(encodingsFor(compiled({ flags: [{ name: 'legacy', percent: 10, set: { models: { chat: { pin: 'gpt-4-0613' } } } }] }))).toEqual(new Set(['o200k_base', 'cl100k_base']));
    const config = compiled();
    expect(encodingsFor({ ...config, models: config.models.filter((m) => m.name === 'local') })).toEqual(new Set());
  });

  it('counts exactly only where a cap or a budget decides, and loads no encoding otherwise', () => {
    const uncapped = compiled({ models: [{ name: 'chat', pin: GPT, fallback: [{ provider: 'openai' }] }] });
    const model = uncapped.models[0]!;
    expect(admissionCounting(uncapped, model)).toBe(BYTE_ESTIMATE);
    expect(encodingsFor(uncapped)).toEqual(new Set());
    expect(admissionCounting(uncapped, { ...model, maxInputTokens: 100 })).toMatchObject({ encoding: 'o200k_base', exact: true });
    const budgeted = compiled({ models: [{ name: 'chat', pin: GPT, fallback: [{ provider: 'openai' }] }], budget: { daily: 5 } });
    expect(admissionCounting(budgeted, budgeted.models[0]!)).toMatchObject({ encoding: 'o200k_base', exact: true });
    // A flag that sets a cap brings its encoding along.
    expect(encodingsFor(compiled({ models: [{ name: 'chat', pin: GPT, fallback: [{ provider: 'openai' }] }], flags: [{ name: 'capped', percent: 5, set: { models: { chat: { maxInputTokens: 100 } } } }] }))).toEqual(new Set(['o200k_base']));
  });
});

describe('estimates', () => {
  const claude = countingFor('anthropic', CLAUDE);
  const selfHosted = countingFor('openai-compatible', 'llama-3.1-8b');
  const hello = chat([{ role: 'user', content: 'hello world' }]);

  it("scales o200k_base's count for Claude and adds Anthropic's tool-use prompt", async () => {
    const counted = await countPromptTokens(hello, claude, undefined);
    expect(counted).toEqual({ tokens: Math.ceil(9 * CLAUDE_FACTOR), exact: false, how: "estimated with o200k_base × 1.3 (Claude's tokenizer is not public)" });
    const tool = { type: 'function' as const, function: { name: 'f' } };
    const withTool = await countPromptTokens(chat(hello.messages, { tools: [tool] }), claude, undefined);
    const openAIWithTool = await countPromptTokens(chat(hello.messages, { tools: [tool] }), o200k, undefined);
    expect(withTool.tokens).toBe(Math.ceil((openAIWithTool.tokens + CLAUDE_TOOLS_PROMPT) * CLAUDE_FACTOR));
  });

  it('counts UTF-8 bytes over four where no tokenizer applies, so CJK text is not under-counted fourfold', async () => {
    // "user" is 4 bytes; 3 framing tokens per message and 3 priming the reply.
    expect(await countPromptTokens(chat([{ role: 'user', content: 'a'.repeat(400) }]), selfHosted, undefined)).toEqual({ tokens: 101 + 6, exact: false, how: 'estimated with UTF-8 bytes / 4' });
    expect((await countPromptTokens(chat([{ role: 'user', content: 'お'.repeat(400) }]), selfHosted, undefined)).tokens).toBe(301 + 6);
    expect(estimateRequestTokens(chat([{ role: 'user', content: 'a'.repeat(400) }], { max_tokens: 50 }), {})).toBe(107 + 50);
  });
});

describe('when to tokenize', () => {
  it('tokenizes small prompts always, large ones only when the byte bound does not prove them within the cap', () => {
    expect(needsTokenizer(EXACT_COUNT_MAX_BYTES, EXACT_COUNT_MAX_BYTES + 10, undefined)).toBe(true);
    expect(needsTokenizer(EXACT_COUNT_MAX_BYTES + 1, EXACT_COUNT_MAX_BYTES + 10, undefined)).toBe(false);
    expect(needsTokenizer(EXACT_COUNT_MAX_BYTES + 1, EXACT_COUNT_MAX_BYTES + 10, EXACT_COUNT_MAX_BYTES + 10)).toBe(false);
    expect(needsTokenizer(EXACT_COUNT_MAX_BYTES + 1, EXACT_COUNT_MAX_BYTES + 10, EXACT_COUNT_MAX_BYTES + 9)).toBe(true);
  });

  it('estimates a large prompt the cap cannot refuse, and counts one it might', async () => {
    const large = chat([{ role: 'user', content: 'hello world '.repeat(4000) }]);
    expect(await countPromptTokens(large, o200k, undefined)).toMatchObject({ exact: false, how: 'estimated with UTF-8 bytes / 4' });
    expect(await countPromptTokens(large, o200k, 100_000)).toMatchObject({ exact: false, how: 'estimated with UTF-8 bytes / 4' });
    // "hello world " is 2 tokens a time in o200k_base, and the last space 1: far below its 48,000 bytes.
    expect(await countPromptTokens(large, o200k, 20_000)).toEqual({ tokens: 8001 + 1 + 6, exact: true, how: 'counted with o200k_base' });
  });
});

describe('the 400 over maxInputTokens', () => {
  const counted: PromptCount = { tokens: 1200, exact: true, how: 'counted with o200k_base' };
  const estimated: PromptCount = { tokens: 1200, exact: false, how: 'estimated with UTF-8 bytes / 4' };

  it('says by how much, and whether the count is exact or an estimate', () => {
    expect(inputLimitError(counted, { name: 'chat', maxInputTokens: 1200 })).toBeUndefined();
    expect(inputLimitError(counted, { name: 'chat' })).toBeUndefined();
    const exact = inputLimitError(counted, { name: 'chat', maxInputTokens: 1000 });
    expect(exact).toMatchObject({ status: 400, code: 'context_length_exceeded', param: 'messages' });
    expect(exact?.message).toBe('the prompt is 1200 tokens (counted with o200k_base), 200 over model "chat"\'s limit of 1000; shorten it');
    expect(inputLimitError(estimated, { name: 'chat', maxInputTokens: 1000 })?.message).toBe('the prompt is about 1200 tokens (estimated with UTF-8 bytes / 4), 200 over model "chat"\'s limit of 1000; shorten it');
  });

  describe('through the gateway', () => {
    let fakes: Fakes;
    beforeAll(async () => {
      fakes = await startFakes();
    });
    afterAll(() => stopFakes(fakes));

    // 3 + "user" 1 + "hello world" 2 + 3.
    const HELLO: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'hello world' }];

    /** Asks for HELLO through a gateway whose model has the cap and the primary; resolves with the error, if any. */
    async function askCapped(maxInputTokens: number, provider = 'openai', model = GPT): Promise<unknown> {
      resetFakes(fakes);
      const gateway = await gatewayFor(fakes, { models: [{ name: 'chat', pin: GPT, maxInputTokens, timeouts: TIMEOUTS, fallback: [{ provider, model }] }] });
      try {
        return await gateway.client().chat.completions.create({ model: 'chat', messages: HELLO }).then(() => undefined, (e: unknown) => e);
      } finally {
        await gateway.stop();
      }
    }

    it('refuses a prompt over the cap with 400 before any provider is asked, and serves one at the cap', async () => {
      const error = await askCapped(8);
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      const refused = error as InstanceType<typeof OpenAI.BadRequestError>;
      expect(refused.code).toBe('context_length_exceeded');
      expect(refused.message).toContain('the prompt is 9 tokens (counted with o200k_base), 1 over model "chat"\'s limit of 8');
      expect(fakes.openai.attempts).toHaveLength(0);

      expect(await askCapped(9)).toBeUndefined();
      expect(fakes.openai.attempts).toHaveLength(1);
    });

    it('says the count is an estimate for a Claude primary', async () => {
      const error = await askCapped(11, 'anthropic', CLAUDE);
      expect((error as Error).message).toContain(`the prompt is about 12 tokens (estimated with o200k_base × 1.3 (Claude's tokenizer is not public)), 1 over`);
      expect(fakes.anthropic.attempts).toHaveLength(0);
    });
  });
});
