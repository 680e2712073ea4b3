/**
 * A process's credentials in the mesh, loaded once at start: the keys that prove who it is and
 * check who calls it (auth.ts), and, with GRPC_TLS_DIR set, the certificates for mutual TLS on
 * every gRPC connection it serves or opens.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials as grpcCredentials, InterceptingCall, Metadata, ServerCredentials, type ChannelCredentials, type ClientOptions, type Interceptor } from '@grpc/grpc-js';
import {
  AUTH_METADATA_KEY,
  AuthKeysMissing,
  FORWARDED_TO,
  loadPublicKeys,
  loadSigningKey,
  MESH_SERVICES,
  TokenMinter,
  TokenVerifier,
  type MeshService,
} from './auth.js';
import type { Caller } from './identity.js';
import { DEV_AUTH_DIR } from './config.js';

export interface CredentialsSettings {
  AUTH_PUBLIC_KEYS_DIR: string;
  AUTH_SIGNING_KEY: string;
  GRPC_TLS_DIR: string;
}

interface TlsFiles {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

function readTls(dir: string): TlsFiles {
  const read = (file: string) => {
    const path = join(dir, file);
    if (!existsSync(path)) throw new Error(`GRPC_TLS_DIR ${dir} has no ${file}; run \`npm run auth -- certs\` for development certificates (see README "Identity and credentials")`);
    return readFileSync(path);
  };
  return { ca: read('ca.crt'), cert: read('tls.crt'), key: read('tls.key') };
}

export class MeshCredentials {
  readonly verifier: TokenVerifier;
  readonly tls: boolean;
  private readonly minterOrNone: TokenMinter | undefined;
  private readonly tlsFiles: TlsFiles | undefined;

  private constructor(
    readonly self: string,
    settings: CredentialsSettings,
  ) {
    this.verifier = new TokenVerifier(self, loadPublicKeys(settings.AUTH_PUBLIC_KEYS_DIR));
    const signingKey = settings.AUTH_SIGNING_KEY || join(DEV_AUTH_DIR, 'private', `${self}.pem`);
    const required = (MESH_SERVICES as readonly string[]).includes(self) || settings.AUTH_SIGNING_KEY !== '';
    this.minterOrNone = required || existsSync(signingKey) ? new TokenMinter(self, loadSigningKey(signingKey)) : undefined;
    this.tlsFiles = settings.GRPC_TLS_DIR ? readTls(settings.GRPC_TLS_DIR) : undefined;
    this.tls = this.tlsFiles !== undefined;
  }

  /** Loads keys (and certificates) for process `self`; throws naming the missing file and the command that makes it. */
  static load(self: string, settings: CredentialsSettings): MeshCredentials {
    return new MeshCredentials(self, settings);
  }

  /** Mints this process's tokens; only processes with a signing key can call other services. */
  get minter(): TokenMinter {
    if (!this.minterOrNone) throw new AuthKeysMissing(`process ${this.self} has no signing key`);
    return this.minterOrNone;
  }

  /** What a gRPC server binds with: plaintext, or TLS demanding a client certificate from the mesh's CA. */
  serverCredentials(): ServerCredentials {
    const t = this.tlsFiles;
    return t ? ServerCredentials.createSsl(t.ca, [{ cert_chain: t.cert, private_key: t.key }], true) : ServerCredentials.createInsecure();
  }

  channelCredentials(): ChannelCredentials {
    const t = this.tlsFiles;
    return t ? grpcCredentials.createSsl(t.ca, t.key, t.cert) : grpcCredentials.createInsecure();
  }

  /**
   * Client options for calls to `service` (`room`, …): every call that carries no token gets this
   * process's own service token, and under TLS the server's certificate is checked against the
   * service's name rather than the address dialled (P2C dials pod IPs, which certificates do not list).
   */
  clientOptions(service: string): Partial<ClientOptions> {
    const minter = this.minter;
    const interceptor: Interceptor = (options, nextCall) =>
      new InterceptingCall(nextCall(options), {
        start(metadata, listener, next) {
          if (metadata.get(AUTH_METADATA_KEY).length === 0) metadata.set(AUTH_METADATA_KEY, `Bearer ${minter.service(service)}`);
          next(metadata, listener);
        },
      });
    return { interceptors: [interceptor], ...(this.tls ? { 'grpc.ssl_target_name_override': service } : {}) };
  }

  /** A user's token for a call to `service` (and the services it forwards to on the user's behalf). */
  userToken(caller: Pick<Caller, 'userId' | 'role' | 'name'>, service: string): string {
    return this.minter.user(caller, [service, ...(FORWARDED_TO[service as MeshService] ?? [])]);
  }
}

/** Metadata for a call made on `caller`'s behalf: their verified token, unchanged. */
export function onBehalfOf(caller: Pick<Caller, 'token'>): Metadata {
  const md = new Metadata();
  if (caller.token) md.set(AUTH_METADATA_KEY, `Bearer ${caller.token}`);
  return md;
}
