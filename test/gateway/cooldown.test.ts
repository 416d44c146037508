import { describe, expect, it } from '@jest/globals';
import { Cooldowns } from '../../src/gateway/cooldown.js';

function setup() {
  let now = 1_000_000;
  const cooldowns = new Cooldowns(() => now);
  return { cooldowns, start: now, advance: (ms: number) => (now += ms) };
}

describe('Cooldowns', () => {
  it('takes a provider out of rotation for the cool-down, and puts it back when it ends', () => {
    const { cooldowns, start, advance } = setup();
    expect(cooldowns.isCooling('openai')).toBe(false);
    cooldowns.coolDown('openai', 15 * 60_000);
    expect(cooldowns.isCooling('openai')).toBe(true);
    expect(cooldowns.endsAt('openai')).toBe(start + 15 * 60_000);
    expect(cooldowns.isCooling('azure')).toBe(false);
    advance(15 * 60_000 - 1);
    expect(cooldowns.isCooling('openai')).toBe(true);
    advance(1);
    expect(cooldowns.isCooling('openai')).toBe(false);
    expect(cooldowns.endsAt('openai')).toBeUndefined();
  });

  it('extends a cool-down but never shortens it', () => {
    const { cooldowns, start, advance } = setup();
    cooldowns.coolDown('openai', 60_000);
    advance(10_000);
    cooldowns.coolDown('openai', 1000);
    expect(cooldowns.endsAt('openai')).toBe(start + 60_000);
    cooldowns.coolDown('openai', 100_000);
    expect(cooldowns.endsAt('openai')).toBe(start + 110_000);
  });

  it('ignores a zero cool-down, the policy of classes that need none', () => {
    const { cooldowns } = setup();
    cooldowns.coolDown('openai', 0);
    expect(cooldowns.isCooling('openai')).toBe(false);
  });

  it('reports the earliest end among the providers asked about that are cooling', () => {
    const { cooldowns, start, advance } = setup();
    expect(cooldowns.earliestEnd(['openai', 'azure'])).toBeUndefined();
    cooldowns.coolDown('openai', 60_000);
    cooldowns.coolDown('azure', 30_000);
    cooldowns.coolDown('elsewhere', 1000); // not in this chain
    expect(cooldowns.earliestEnd(['openai', 'azure', 'llama'])).toBe(start + 30_000);
    advance(30_000); // azure is back
    expect(cooldowns.earliestEnd(['openai', 'azure'])).toBe(start + 60_000);
  });

  it('puts a provider back at once when cleared', () => {
    const { cooldowns } = setup();
    cooldowns.coolDown('openai', 60_000);
    cooldowns.clear('openai');
    expect(cooldowns.isCooling('openai')).toBe(false);
  });
});
