import { parseArgs } from 'node:util';
import { formatFinding, hasErrors, loadRoutes } from '../api/files.js';
import { renderEnvironment } from '../render/render.js';
import { toYaml } from '../render/yaml.js';

export const RENDER_USAGE = 'llmroute render FILE [--env NAME] [--route NAME] [--namespace NS] [--image IMAGE]';

/** `llmroute render`: prints the manifests of one route environment, exactly as `cdk8s synth` writes them. */
export async function renderCommand(args: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: { env: { type: 'string' }, route: { type: 'string' }, namespace: { type: 'string' }, image: { type: 'string' } },
    });
  } catch (error) {
    err.write(`llmroute render: ${(error as Error).message}\nusage: ${RENDER_USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) {
    err.write(`llmroute render: name one LLMRoute file\nusage: ${RENDER_USAGE}\n`);
    return 2;
  }
  const loaded = await loadRoutes(positionals);
  for (const found of loaded.findings) err.write(`${formatFinding(found)}\n`);
  if (hasErrors(loaded.findings)) return 1;

  const candidates = loaded.routes.filter((r) => !values.route || r.route.metadata.name === values.route);
  if (candidates.length !== 1) {
    const names = loaded.routes.map((r) => r.route.metadata.name).join(', ');
    err.write(values.route ? `llmroute render: no LLMRoute "${values.route}" in ${positionals[0]}; it has ${names}\n` : `llmroute render: ${positionals[0]} holds several LLMRoutes (${names}); choose one with --route\n`);
    return 2;
  }
  const { route } = candidates[0] as (typeof candidates)[number];
  const environments = route.spec.environments.map((e) => e.name);
  const environment = values.env ?? (environments.length === 1 ? environments[0] : undefined);
  if (!environment || !environments.includes(environment)) {
    err.write(`llmroute render: ${values.env ? `no environment "${values.env}"` : 'choose an environment with --env'}; "${route.metadata.name}" has ${environments.join(', ')}\n`);
    return 2;
  }
  const rendered = renderEnvironment({
    route,
    environment,
    ...(values.namespace ? { namespace: values.namespace } : {}),
    ...(values.image ? { image: values.image } : {}),
  });
  out.write(toYaml(rendered.objects));
  return 0;
}
