#!/usr/bin/env node
// The published entry point runs the compiled CLI; `npm install` in a checkout compiles it (the `prepare` script).
import('../build/src/cli/run.js').catch((error) => {
  if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('build/src/cli/run.js')) {
    console.error('llmroute: the CLI is not compiled yet; run `npm run build` (or `npm install`) in the package directory.');
    process.exit(2);
  }
  throw error;
});
