/** Identity of the LLMRoute API: one place, so the CRD, the CLI and the controller cannot disagree. */
export const GROUP = 'llmroute.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'LLMRoute';
export const LIST_KIND = 'LLMRouteList';
export const PLURAL = 'llmroutes';
export const SINGULAR = 'llmroute';
export const SHORT_NAMES = ['llmr'];
/** `kubectl get llm` and `kubectl get all-llm`-style listing of everything llmroute owns. */
export const CATEGORIES = ['llmroute'];
export const CRD_NAME = `${PLURAL}.${GROUP}`;
