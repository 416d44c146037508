/**
 * Regular expressions shared by the zod schema, the CRD's CEL rules and the validator.
 * All of them are RE2-compatible (no lookaround, no backreferences) because the API server evaluates them with RE2.
 */

/** RFC 1123 label: used in object names, so environment, provider, client and flag names must be one. */
export const DNS1123_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/** RFC 1035 label: Service names must start with a letter, and a route's Services are named after it. */
export const DNS1035_LABEL = '^[a-z]([-a-z0-9]*[a-z0-9])?$';
/** RFC 1123 subdomain: what Kubernetes accepts for Secret and SecretStore names. */
export const DNS1123_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
/** A Secret data key. */
export const SECRET_KEY = '^[-._a-zA-Z0-9]+$';
/** A model name as clients send it: letters, digits and the punctuation model names use (`gpt-4.1`, `llama3:8b`). */
export const MODEL_NAME = '^[A-Za-z0-9]([-A-Za-z0-9._:/@]*[A-Za-z0-9])?$';
/**
 * A dated snapshot ends in a release date, YYYY-MM-DD or YYYYMMDD, after '-', '_' or '@': `-2024-08-06` (OpenAI, Azure),
 * `-20250514` (Anthropic), `@20241022`
 * (Vertex). A floating alias such as `gpt-4o` or `claude-3-5-sonnet-latest` can move under you without a deploy.
 */
export const DATED_SNAPSHOT =
  '[-@_](19|20)[0-9]{2}(-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])|(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01]))$';
/** A Go-style duration as Kubernetes users write them (`15m`, `1h30m`, `90s`). */
export const DURATION = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$';
/** An http(s) URL: the gateway only speaks HTTP to providers. */
export const HTTP_URL = '^https?://[^\\s/$.?#][^\\s]*$';

/** Parses a Go-style duration into milliseconds; the pattern above has already vouched for the syntax. */
export function durationToMilliseconds(duration: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  for (const match of duration.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)) {
    total += Number(match[1]) * (units[match[2] as string] as number);
  }
  return total;
}

/** A Kubernetes resource quantity (`100m`, `0.5`, `128Mi`, `1G`), the API server's own pattern. */
export const QUANTITY = '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$';
