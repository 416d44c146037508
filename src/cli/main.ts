/** The `llmroute` command. Subcommands live one per file; this only dispatches. */
import { CONTROLLER_USAGE, controllerCommand } from './controller.js';
import { DRILL_USAGE, drillCommand } from './drill.js';
import { GATEWAY_USAGE, gatewayCommand } from './gateway.js';
import { RENDER_USAGE, renderCommand } from './render.js';
import { UP_USAGE, upCommand } from './up.js';
import { validateCommand } from './validate.js';

const USAGE = `usage: llmroute <command> [arguments]

commands:
  validate FILE|DIR...   check LLMRoute manifests; prints "file:line:column: path: message" and exits 1 on errors
  render FILE --env NAME print the Kubernetes manifests of one route environment (what \`cdk8s synth\` writes)
                         ${RENDER_USAGE}
  up [-f ROUTE.yaml]     serve one environment of a route locally (default: the built-in quickstart, no keys needed)
                         ${UP_USAGE}
  drill -f ROUTE.yaml    send one minimal request through every fallback step with every key; exits 1 if any would fail
                         ${DRILL_USAGE}
  gateway --config FILE  run the gateway on a compiled config (what the rendered Deployment runs)
                         ${GATEWAY_USAGE}
  controller [flags]     run the operator: reconcile LLMRoutes into gateways per environment
                         ${CONTROLLER_USAGE.replace(/\n/g, '\n                         ')}
  help                   show this help
`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'validate':
      return validateCommand(rest, process.stdout, process.stderr);
    case 'render':
      return renderCommand(rest, process.stdout, process.stderr);
    case 'up':
      return upCommand(rest, process.stdout, process.stderr);
    case 'drill':
      return drillCommand(rest, process.stdout, process.stderr);
    case 'gateway':
      return gatewayCommand(rest, process.stderr);
    case 'controller':
      return controllerCommand(rest, process.stderr);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`llmroute: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}
