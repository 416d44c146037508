/**
 * Files derived from the schema and committed, so reviewers see what changed. `npm run generate` writes them;
 * test/generated.test.ts fails when a committed copy has drifted from what the code generates.
 */
import { apiReferenceMarkdown } from '../src/api/reference.js';
import { crdYaml } from '../src/api/crd.js';

export const GENERATED_FILES: { path: string; render: () => string }[] = [
  { path: 'crds/llmroute.dev_llmroutes.yaml', render: crdYaml },
  { path: 'docs/api.md', render: apiReferenceMarkdown },
  // Helm installs a chart's crds/ as they are; the chart must carry exactly the generated CRD.
  { path: 'charts/llmroute/crds/llmroute.dev_llmroutes.yaml', render: crdYaml },
];
