/**
 * Who may call the gateway. With `auth: tokens` every caller presents `Authorization: Bearer <token>`, compared in
 * constant time with the tokens in the clients' Secret files; with `auth: none` (chosen explicitly in the route)
 * anyone who can reach the gateway may call it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { GatewayConfig } from '../api/gateway-config.js';

export type AuthResult = { ok: true; client: string } | { ok: false; status: 401; message: string };

/** Hashing first makes every comparison the same length, so timing reveals nothing about a token's length either. */
const digest = (token: string) => createHash('sha256').update(token).digest();

export class ClientTokens {
  private tokens: { client: string; digest: Buffer }[] = [];
  private problems: string[] = [];

  async load(config: GatewayConfig): Promise<void> {
    const tokens: { client: string; digest: Buffer }[] = [];
    const problems: string[] = [];
    for (const client of config.clients) {
      try {
        const token = (await readFile(client.tokenFile, 'utf8')).trim();
        if (token) tokens.push({ client: client.name, digest: digest(token) });
        else problems.push(`client "${client.name}": ${client.tokenFile} is empty`);
      } catch (error) {
        problems.push(`client "${client.name}": ${client.tokenFile} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
      }
    }
    this.tokens = tokens;
    this.problems = problems;
  }

  /** Tokens that could not be loaded; such a client is refused until its file is fixed. */
  loadProblems(): readonly string[] {
    return this.problems;
  }

  authenticate(mode: GatewayConfig['auth'], header: string | undefined): AuthResult {
    if (mode === 'none') return { ok: true, client: 'anonymous' };
    if (this.tokens.length === 0) {
      return { ok: false, status: 401, message: 'this gateway accepts no callers: the route has auth: tokens and no client token could be loaded; add spec.clients with a token Secret, or set auth: none for a local demo' };
    }
    const match = /^Bearer\s+(.+)$/i.exec(header ?? '');
    if (!match) return { ok: false, status: 401, message: 'missing bearer token: send "Authorization: Bearer <client token>"' };
    const presented = digest((match[1] as string).trim());
    let found: string | undefined;
    // Compare against every token, always: stopping at the first match would leak which position matched.
    for (const { client, digest: expected } of this.tokens) if (timingSafeEqual(presented, expected)) found ??= client;
    return found ? { ok: true, client: found } : { ok: false, status: 401, message: 'invalid client token' };
  }
}
