/**
 * Graceful shutdown: `stop()` refuses new connections at once and lets a stream in flight finish within the grace
 * period; a stream that outlasts the grace period is cut when it ends, never closed as if it were complete.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { gatewayFor, resetFakes, startFakes, stopFakes, USER, type Fakes } from './fixtures.js';

let fakes: Fakes;
beforeAll(async () => {
  fakes = await startFakes();
});
afterAll(() => stopFakes(fakes));

const SLOW_TEXT = 'one two three four five six seven eight nine ten eleven twelve.';

/** Whether a new TCP connection to the port is accepted. */
function accepts(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

it('lets a slow stream in flight finish while refusing new connections', async () => {
  const gateway = await gatewayFor(fakes);
  try {
    // Twelve pieces 80 ms apart: about a second of streaming.
    fakes.openai.script({ kind: 'ok', text: SLOW_TEXT, chunkDelayMs: 80 });
    const stream = await gateway.client().chat.completions.create({ model: 'chat', messages: USER, stream: true });
    const iterator = stream[Symbol.asyncIterator]();
    let text = '';
    const first = await iterator.next();
    text += first.done ? '' : (first.value.choices[0]?.delta.content ?? '');
    expect(text).not.toBe('');

    const stopping = Date.now();
    let stoppedAt = 0;
    const stopped = gateway.stop(5000).then(() => {
      stoppedAt = Date.now();
    });
    await sleep(50);
    expect(await accepts(gateway.url)).toBe(false);
    expect(stoppedAt).toBe(0);

    for (let next = await iterator.next(); !next.done; next = await iterator.next()) text += next.value.choices[0]?.delta.content ?? '';
    // The whole answer, ended by [DONE] (the SDK would have thrown on an error event).
    expect(text).toBe(SLOW_TEXT);
    await stopped;
    // Drained as soon as the stream was over, well within the grace period.
    expect(stoppedAt - stopping).toBeGreaterThanOrEqual(500);
    expect(stoppedAt - stopping).toBeLessThan(2500);
  } finally {
    await gateway.stop();
    resetFakes(fakes);
  }
});

it('cuts a stream that outlasts the grace period: no [DONE]', async () => {
  const gateway = await gatewayFor(fakes, { timeouts: { idleSeconds: 1 } });
  try {
    fakes.openai.script({ kind: 'ok', text: SLOW_TEXT, chunkDelayMs: 200 });
    const response = await fetch(`${gateway.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'chat', messages: USER, stream: true }) });
    expect(response.status).toBe(200);
    const reading = response.text().catch((error: unknown) => `ERROR ${String(error)}`);
    await sleep(300);
    const stopping = Date.now();
    await gateway.stop(300);
    const took = Date.now() - stopping;
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(1500);
    const raw = await reading;
    expect(raw).not.toContain('[DONE]');
  } finally {
    await gateway.stop();
    resetFakes(fakes);
  }
});
