import { formatFinding, hasErrors, loadRoutes } from '../api/files.js';

/** `llmroute validate FILE|DIR…`: prints one line per finding; exits 1 on any error. */
export async function validateCommand(paths: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  if (paths.length === 0) {
    err.write('llmroute validate: name at least one file or directory, e.g. `llmroute validate examples/`\n');
    return 2;
  }
  const result = await loadRoutes(paths);
  for (const found of result.findings) out.write(`${formatFinding(found)}\n`);
  const errors = result.findings.filter((f) => f.severity === 'error').length;
  const warnings = result.findings.length - errors;
  const routes = `${result.routes.length} LLMRoute${result.routes.length === 1 ? '' : 's'} in ${result.files} file${result.files === 1 ? '' : 's'}`;
  const tail = [errors && `${errors} error${errors === 1 ? '' : 's'}`, warnings && `${warnings} warning${warnings === 1 ? '' : 's'}`].filter(Boolean).join(', ');
  err.write(hasErrors(result.findings) ? `invalid: ${tail}; ${routes} valid\n` : `valid: ${routes}${tail ? ` (${tail})` : ''}\n`);
  return hasErrors(result.findings) ? 1 : 0;
}
