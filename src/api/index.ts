export * from './group.js';
export * from './schema.js';
export { RULES, checkRules, celRules, needsKey, type Finding, type PathSegment, type Severity } from './rules.js';
export { validateRoute, hasErrors, isLLMRouteDocument, type Validation } from './validate.js';
export { parseDocuments, type SourceDocument, type Position } from './documents.js';
export { formatPath } from './paths.js';
