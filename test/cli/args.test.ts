import { describe, expect, it } from '@jest/globals';
import { integerArg, levelArg, portArg } from '../../src/cli/args.js';

describe('command-line values', () => {
  it('accepts what is in range and names the flag otherwise', () => {
    expect(integerArg('workers', '4', 1, 99)).toBe(4);
    expect(() => integerArg('workers', '0', 1, 99)).toThrow('--workers takes a whole number from 1 to 99, not "0"');
    expect(() => integerArg('workers', '', 1, 99)).toThrow('--workers');
    expect(() => integerArg('workers', '2.5', 1, 99)).toThrow('--workers');
    expect(portArg('port', '0')).toBe(0);
    expect(() => portArg('port', '70000')).toThrow('--port takes a whole number from 0 to 65535, not "70000"');
    expect(levelArg('warn')).toBe('warn');
    expect(() => levelArg('loud')).toThrow('--log-level takes one of debug, info, warn, error, not "loud"');
  });
});
