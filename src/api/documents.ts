/**
 * Reads YAML (or JSON) text into documents that remember where each field was written, so findings can name
 * `file:line:column` as well as the field path.
 */
import { LineCounter, isMap, isPair, isScalar, isSeq, parseAllDocuments, type Document, type Node } from 'yaml';
import type { Finding, PathSegment } from './rules.js';

export interface Position {
  line: number;
  column: number;
}

export interface SourceDocument {
  /** 1-based index of the document within the file. */
  index: number;
  value: unknown;
  /** Syntax errors; when present, `value` is not to be trusted. */
  errors: Finding[];
  locate(path: readonly PathSegment[]): Position | undefined;
}

/** The node a path names: the key of the last map entry found, or the deepest node the path reaches. */
function nodeAt(doc: Document, path: readonly PathSegment[]): Node | undefined {
  let current: unknown = doc.contents;
  let found = (doc.contents as Node | null) ?? undefined;
  for (const [depth, segment] of path.entries()) {
    const isLast = depth === path.length - 1;
    if (isMap(current)) {
      const pair = current.items.find((item) => isPair(item) && isScalar(item.key) && String(item.key.value) === String(segment));
      if (!pair) break;
      current = pair.value;
      found = ((isLast ? pair.key : pair.value) as Node | null) ?? found;
    } else if (isSeq(current) && typeof segment === 'number' && current.items[segment]) {
      current = current.items[segment];
      found = current as Node;
    } else {
      break;
    }
  }
  return found;
}

export function parseDocuments(text: string): SourceDocument[] {
  const lineCounter = new LineCounter();
  const documents = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const list = Array.isArray(documents) ? documents : [];
  return list
    .map((doc, i) => {
      const errors: Finding[] = doc.errors.map((e) => ({
        path: [],
        severity: 'error' as const,
        message: `YAML: ${e.message.split('\n')[0]}`,
      }));
      const position = (offset: number | undefined): Position | undefined => {
        if (offset === undefined) return undefined;
        const { line, col } = lineCounter.linePos(offset);
        return { line, column: col };
      };
      const firstErrorOffset = doc.errors[0]?.pos[0];
      return {
        index: i + 1,
        value: errors.length ? undefined : doc.toJS({ maxAliasCount: 100 }),
        errors,
        locate: (path: readonly PathSegment[]) => (path.length === 0 && firstErrorOffset !== undefined ? position(firstErrorOffset) : position(nodeAt(doc, path)?.range?.[0])),
      };
    })
    .filter((doc) => doc.errors.length > 0 || (doc.value !== null && doc.value !== undefined));
}
