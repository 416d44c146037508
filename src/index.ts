/** The llmroute package: the LLMRoute API, for tools and cdk8s apps that build on it. */
export * from './api/index.js';
