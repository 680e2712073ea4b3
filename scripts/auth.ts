/**
 * `npm run auth -- <command>`: development credentials and operators' tokens.
 *
 *   keys                                   create the development key pairs (.livemesh/auth), if missing
 *   certs [--force] [--days N]             create a development CA and per-process certificates (.livemesh/tls)
 *   token admin [--user ID] [--ttl 1h]     an operator-signed admin token, for grpc debugging and the CLIs
 *   token user ID --role R [--name N]      an operator-signed token for one user (reproducing a report)
 *   token service NAME [--ttl 30d]         a service token for another team's service
 *   options for token: --aud room,gift,…   the services it is good for (default: all five)
 *
 * Tokens are printed alone on stdout, for `TOKEN=$(npm run -s auth -- token admin)`. The signing
 * key is AUTH_OPERATOR_KEY, or the development operator key.
 */
import { ensureDevCerts, ensureDevKeys, GRPC_SERVICES, operatorServiceToken, operatorUserToken, parseTtl } from './credentials.js';
import { isPositiveInt64, type Role } from '../kit/identity.js';

const USAGE = `usage: npm run auth -- <command>
  keys
  certs [--force] [--days N]
  token admin [--user ID] [--ttl 1h] [--aud room,gift,...]
  token user ID --role viewer|streamer|admin [--name NAME] [--ttl 1h] [--aud ...]
  token service NAME [--ttl 1h] [--aud ...]`;

function fail(message: string, code = 2): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

function parse(argv: string[]): { args: string[]; opts: Map<string, string> } {
  const args: string[] = [];
  const opts = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--force') opts.set('force', 'true');
    else if (a.startsWith('--')) {
      const value = argv[++i];
      if (value === undefined) fail(`option ${a} needs a value\n${USAGE}`);
      opts.set(a.slice(2), value);
    } else args.push(a);
  }
  return { args, opts };
}

function main(): void {
  const { args, opts } = parse(process.argv.slice(2));
  const known = new Set(['force', 'days', 'user', 'ttl', 'aud', 'role', 'name']);
  for (const key of opts.keys()) if (!known.has(key)) fail(`unknown option --${key}\n${USAGE}`);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const [command, kind, subject] = args;
  if (command === 'keys') return ensureDevKeys(undefined, log);
  if (command === 'certs') {
    const days = Number(opts.get('days') ?? 825);
    if (!Number.isInteger(days) || days < 1) fail('--days must be a positive integer');
    return ensureDevCerts(undefined, { days, force: opts.has('force'), log });
  }
  if (command !== 'token') fail(USAGE);
  const ttlS = parseTtl(opts.get('ttl') ?? '1h');
  const audience = opts.has('aud') ? opts.get('aud')!.split(',').map((s) => s.trim()).filter(Boolean) : GRPC_SERVICES;
  for (const aud of audience) if (!(GRPC_SERVICES as readonly string[]).includes(aud)) fail(`--aud: unknown service ${aud}; one of ${GRPC_SERVICES.join(', ')}`);
  let token: string;
  if (kind === 'admin') {
    const user = opts.get('user') ?? '1';
    if (!isPositiveInt64(user)) fail('--user must be a positive 64-bit integer');
    token = operatorUserToken(user, 'admin', opts.get('name') ?? 'operator', { ttlS, audience });
  } else if (kind === 'user') {
    const role = opts.get('role') as Role | undefined;
    if (!subject || !isPositiveInt64(subject)) fail('token user needs a positive 64-bit user id');
    if (role !== 'viewer' && role !== 'streamer' && role !== 'admin') fail('--role must be viewer, streamer or admin');
    token = operatorUserToken(subject, role, opts.get('name') ?? '', { ttlS, audience });
  } else if (kind === 'service') {
    if (!subject || !/^[a-z][a-z0-9-]{0,62}$/.test(subject)) fail('token service needs a name of lowercase letters, digits and dashes');
    token = operatorServiceToken(subject, { ttlS, audience });
  } else {
    fail(USAGE);
  }
  process.stdout.write(`${token}\n`);
}

try {
  main();
} catch (err) {
  fail(`auth: ${(err as Error).message}`, 1);
}
