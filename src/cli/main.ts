/** The `llmroute` command. Subcommands live one per file; this only dispatches. */
import { validateCommand } from './validate.js';

const USAGE = `usage: llmroute <command> [arguments]

commands:
  validate FILE|DIR...   check LLMRoute manifests; prints "file:line:column: path: message" and exits 1 on errors
  help                   show this help
`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'validate':
      return validateCommand(rest, process.stdout, process.stderr);
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
