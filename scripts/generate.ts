/** `npm run generate`: rewrites every generated file from the schema. */
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { GENERATED_FILES } from './generated-files.js';

for (const { path, render } of GENERATED_FILES) {
  const next = render();
  const previous = await readFile(path, 'utf8').catch(() => undefined);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, next);
  console.log(`${previous === next ? 'unchanged' : 'wrote    '} ${path}`);
}
