import { describe, expect, it } from '@jest/globals';
import { forceSyncDue } from '../../src/controller/rotation.js';

const HOUR = 3_600_000;
const now = new Date('2026-11-22T12:00:00.000Z');

describe('forceSyncDue', () => {
  it('is due when never requested or unreadable', () => {
    expect(forceSyncDue(undefined, HOUR, now)).toEqual({ due: true });
    expect(forceSyncDue({ 'force-sync': 'yesterday' }, HOUR, now)).toEqual({ due: true });
  });
  it('waits out the interval, then is due', () => {
    expect(forceSyncDue({ 'force-sync': '2026-11-22T11:30:00.000Z' }, HOUR, now)).toEqual({ due: false, inMs: HOUR / 2 });
    expect(forceSyncDue({ 'force-sync': '2026-11-22T11:00:00.000Z' }, HOUR, now)).toEqual({ due: true });
  });
  it('treats a time in the future as a clock that jumped back and requests now', () => {
    expect(forceSyncDue({ 'force-sync': '2026-11-23T00:00:00.000Z' }, HOUR, now)).toEqual({ due: true });
  });
});
