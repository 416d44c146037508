/** Identity of the LLMRoute API: one place, so the CRD, the CLI and the controller cannot disagree. */
export const GROUP = 'llmroute.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'LLMRoute';
export const LIST_KIND = 'LLMRouteList';
export const PLURAL = 'llmroutes';
export const SINGULAR = 'llmroute';
export const SHORT_NAMES = ['llmr'];
/** `kubectl get llm` lists every llmroute resource; it must differ from the singular, or kubectl never reaches it. */
export const CATEGORIES = ['llm'];
export const CRD_NAME = `${PLURAL}.${GROUP}`;
