/** Constants shared by the benchmark's processes (the runner and its children). */

/** Content chunks in one fake stream, and the gap between two of them. */
export const STREAM_CHUNKS = 20;
export const STREAM_GAP_MS = 1;
/** The `user` of the benchmark's streaming requests: it asks the fake to pace its chunks. */
export const PACED_USER = 'bench-paced-stream';

/** The model snapshot the fake answers with, and that every target is configured to ask for. */
export const MODEL = 'gpt-4o-2024-08-06';

/** Provider key every target sends to the fake (the fake does not check it). */
export const PROVIDER_KEY = 'sk-bench-provider-0123456789abcdef';
/** The bearer token of the benchmark's client (llmroute's client token, LiteLLM's master key). */
export const CLIENT_TOKEN = 'sk-bench-client-0123456789abcdef';

/** The p99 bound of the throughput search, in ms. */
export const P99_BOUND_MS = 20;
