/** The llmroute package: the LLMRoute API and its renderer, for tools and cdk8s apps that build on it. */
export * from './api/index.js';
export { loadRoutes, loadText, formatFinding, type LoadResult, type LoadedRoute, type LocatedFinding } from './api/files.js';
export { compileEnvironment } from './api/compile.js';
export { GatewayConfig, GATEWAY_CONFIG_VERSION } from './api/gateway-config.js';
export { LlmRoute, type LlmRouteProps, type OwnerReference } from './render/llmroute.js';
export { renderEnvironment, type KubernetesObject, type Rendered } from './render/render.js';
export { toYaml } from './render/yaml.js';
