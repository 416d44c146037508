import { stringify } from 'yaml';
import type { KubernetesObject } from './render.js';

/** Multi-document YAML, never line-folded, so the same objects always give the same bytes. */
export function toYaml(objects: readonly KubernetesObject[]): string {
  return objects.map((object) => stringify(object, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n');
}
