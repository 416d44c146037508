/** The llmroute version; test/version.test.ts keeps it equal to package.json's. */
export const VERSION = '0.1.0';
/** The image the rendered Deployment runs unless told otherwise; its entrypoint is the `llmroute` command. */
export const DEFAULT_IMAGE = `ghcr.io/llmroute/llmroute:${VERSION}`;
