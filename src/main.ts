/**
 * The cdk8s app: `cdk8s synth` runs this (see cdk8s.yaml). It renders every LLMRoute under `LLMROUTE_ROUTES`
 * (default `routes/`) into `CDK8S_OUTDIR` (default `dist/`), one file per route environment, offline.
 */
import { synthRoutes } from './render/synth.js';

const routes = process.env.LLMROUTE_ROUTES ?? 'routes';
const outdir = process.env.CDK8S_OUTDIR ?? 'dist';
const result = await synthRoutes(routes.split(',').filter(Boolean), outdir, process.env.LLMROUTE_IMAGE);
for (const message of result.messages) console.error(message);
if (!result.ok) {
  console.error(`llmroute: nothing synthesized; fix the LLMRoutes under ${routes} first`);
  process.exitCode = 1;
} else {
  for (const file of result.written) console.log(`wrote ${file}`);
}
