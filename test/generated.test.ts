import { describe, expect, it } from '@jest/globals';
import { readFile } from 'node:fs/promises';
import { GENERATED_FILES } from '../scripts/generated-files.js';

describe('generated files', () => {
  it.each(GENERATED_FILES.map((f) => [f.path, f.render] as const))('%s matches the schema (run `npm run generate` after changing it)', async (path, render) => {
    const committed = await readFile(path, 'utf8');
    expect(committed).toBe(render());
  });
});
