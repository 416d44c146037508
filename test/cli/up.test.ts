import { describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import OpenAI from 'openai';
import { upCommand } from '../../src/cli/up.js';
import { captureStream } from '../support/streams.js';

describe('llmroute up', () => {
  it('refuses to serve without keys, naming provider, environment and where it looked', async () => {
    const out = captureStream();
    const err = captureStream();
    const keyVariables = Object.keys(process.env).filter((k) => k.startsWith('LLMROUTE_KEY_'));
    expect(keyVariables).toEqual([]);
    expect(await upCommand(['-f', 'examples/support-bot.yaml', '--env', 'staging', '--port', '0', '--metrics-port', '0'], out.stream, err.stream)).toBe(1);
    const text = err.text();
    expect(text).toContain('cannot serve "support-bot" environment "staging"');
    expect(text).toContain('provider "openai" (openai) in environment "staging" has no key: looked for LLMROUTE_KEY_OPENAI');
    expect(text).toContain('provider "anthropic" (anthropic) in environment "staging" has no key: looked for LLMROUTE_KEY_ANTHROPIC');
    expect(text).not.toContain('provider "local"');
  });

  it('asks for an environment when the route has several', async () => {
    const err = captureStream();
    expect(await upCommand(['-f', 'examples/support-bot.yaml'], captureStream().stream, err.stream)).toBe(2);
    expect(err.text()).toContain('choose an environment with --env; "support-bot" has staging, production');
  });

  it('serves the built-in quickstart to the OpenAI SDK and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', 'up', '--port', '0', '--metrics-port', '0'], { env: { ...process.env, NODE_OPTIONS: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL printed; stdout: ${stdout}`)), 20_000);
      child.stdout.on('data', () => {
        const match = /serving at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(stdout);
        if (match) {
          clearTimeout(timer);
          resolve(match[1] as string);
        }
      });
    });
    expect(stdout).toContain(`curl -s ${url}/v1/chat/completions`);
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'not-needed', maxRetries: 0 });
    const answer = await client.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'Hello!' }] });
    expect(answer.model).toBe('mock-2025-01-01');
    expect(answer.choices[0]?.message.content).toContain('Mock answer');
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 40_000);
});
