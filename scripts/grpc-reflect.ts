/**
 * A reflection-only gRPC client: lists, describes and calls any livemesh service knowing nothing
 * but its address. grpcurl is not packaged for Debian, and engineers debugging a replica need
 * something that works from a checkout.
 *
 * Everything about the target's types comes from server reflection (FileContainingSymbol), turned
 * into a protobuf-es FileRegistry. No generated livemesh code is used on purpose: if the server's
 * descriptors are incomplete (a missing import, or the empty `dependency` lists of grpc-node
 * #2595), this tool fails the same way grpcurl would, instead of papering over it with local
 * knowledge. Only the reflection protocol itself and google.rpc error details use generated code.
 *
 *   node dist/scripts/grpc-reflect.js <address> list [service]
 *   node dist/scripts/grpc-reflect.js <address> describe [symbol]
 *   node dist/scripts/grpc-reflect.js <address> call <method> ['<json>' | -] [-H 'key: value']...
 *
 * The services trust no identity but a signed token: pass one as
 * `-H "authorization: Bearer $TOKEN"`, with TOKEN from `npm run -s auth -- token user 7 --role viewer`
 * (or `token admin`). With GRPC_TLS_DIR set (the operator's certificate folder, e.g.
 * .livemesh/tls/operator) the tool speaks mutual TLS; --server-name names the service the
 * server's certificate must be for when the address is not one it lists (a pod IP).
 */
import { realpathSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Client, credentials as grpcCredentials, Metadata, status as Code, type ChannelCredentials, type ChannelOptions, type ServiceError } from '@grpc/grpc-js';
import {
  createFileRegistry,
  fromBinary,
  fromJson,
  ScalarType,
  toBinary,
  toJson,
  type DescEnum,
  type DescField,
  type DescFile,
  type DescMessage,
  type DescMethod,
  type DescService,
  type FileRegistry,
  type JsonValue,
} from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, type DescriptorProto, type FileDescriptorProto } from '@bufbuild/protobuf/wkt';
import { ServerReflectionRequest, ServerReflectionResponse } from '../gen/ts/grpc/reflection/v1/reflection.js';
import { STATUS_DETAILS_KEY, statusDetailsOf } from '../kit/grpc-errors.js';
import { operatorChannelCredentials } from './credentials.js';

/** The two reflection protocol versions; their messages are byte-for-byte identical. */
export type ReflectionVersion = 'v1' | 'v1alpha';

const REFLECTION_PATHS: Record<ReflectionVersion, string> = {
  v1: '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
  v1alpha: '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo',
};

/** One reflection request: exactly one of the message_request fields set. */
export type ReflectionRequest = Partial<ServerReflectionRequest>;
export type ReflectionResponse = ServerReflectionResponse;

/**
 * An error with a gRPC status code: either received from the server (then `metadata` holds the
 * trailers) or raised locally (bad JSON, unknown method, incomplete descriptors).
 */
export class GrpcReflectError extends Error {
  constructor(
    readonly code: Code,
    readonly details: string,
    readonly metadata: Metadata = new Metadata(),
  ) {
    super(`${codeName(code)}: ${details}`);
    this.name = 'GrpcReflectError';
  }
}

/** "INVALID_ARGUMENT" for 3, and so on. */
export function codeName(code: number): string {
  return (Code as unknown as Record<number, string>)[code] ?? `CODE_${code}`;
}

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'number' && (err as { metadata?: unknown }).metadata instanceof Metadata;
}

export interface GrpcReflectOptions {
  /** Reflection versions to try, in order; the first that is not UNIMPLEMENTED is kept. */
  versions?: ReflectionVersion[];
  /** Deadline for each reflection exchange and each call, in milliseconds (default 10 s). */
  deadlineMs?: number;
  /** Channel credentials; insecure (plaintext) by default, as a livemesh port is unless the mesh runs mutual TLS. */
  credentials?: ChannelCredentials;
  /** Channel options (a TLS client sets `grpc.ssl_target_name_override` to the service's name). */
  channelOptions?: ChannelOptions;
}

export interface CallOptions {
  deadlineMs?: number;
  /** Print fields with default values too (grpcurl's -emit-defaults). */
  emitDefaults?: boolean;
  /** Use .proto field names (room_id) rather than lowerCamelCase JSON names (roomId). Default true. */
  protoFieldNames?: boolean;
  /** Called with the response headers (for example the load report a server attaches). */
  onHeaders?: (md: Metadata) => void;
  /** Called with the trailers, on success and failure. */
  onTrailers?: (md: Metadata) => void;
}

/** A parsed method name: `pkg.Service/Method`, `/pkg.Service/Method` or `pkg.Service.Method`. */
export function parseMethodName(name: string): { service: string; method: string } {
  const trimmed = name.replace(/^\//, '');
  const slash = trimmed.indexOf('/');
  const [service, method] = slash >= 0 ? [trimmed.slice(0, slash), trimmed.slice(slash + 1)] : [trimmed.slice(0, trimmed.lastIndexOf('.')), trimmed.slice(trimmed.lastIndexOf('.') + 1)];
  if (!service || !method || method.includes('/')) {
    throw new GrpcReflectError(Code.INVALID_ARGUMENT, `bad method name ${JSON.stringify(name)}: want package.Service/Method or package.Service.Method`);
  }
  return { service, method };
}

/** Whether a FileDescriptorProto declares a fully-qualified symbol (type, service, method, field, value). */
function declares(file: FileDescriptorProto, symbol: string): boolean {
  const pkg = file.package ? `${file.package}.` : '';
  const names: string[] = [];
  const addMessage = (m: DescriptorProto, scope: string) => {
    const full = `${scope}${m.name}`;
    names.push(full, ...m.field.map((f) => `${full}.${f.name}`), ...m.enumType.map((e) => `${full}.${e.name}`));
    m.nestedType.forEach((n) => addMessage(n, `${full}.`));
  };
  file.messageType.forEach((m) => addMessage(m, pkg));
  names.push(...file.enumType.map((e) => `${pkg}${e.name}`));
  for (const s of file.service) names.push(`${pkg}${s.name}`, ...s.method.map((m) => `${pkg}${s.name}.${m.name}`));
  names.push(...file.extension.map((e) => `${pkg}${e.name}`));
  return names.includes(symbol);
}

/**
 * A connection to one server, speaking reflection and making dynamic unary calls.
 *
 * Each reflection exchange opens its own stream, so every answer must carry the complete
 * dependency closure: the protocol lets a server skip files already sent on the same stream, and
 * reusing a stream would hide a server that never sends them.
 */
export class GrpcReflect {
  readonly client: Client;
  /** The reflection version the server answered; set after the first exchange. */
  version: ReflectionVersion | undefined;
  private readonly versions: ReflectionVersion[];
  private readonly deadlineMs: number;
  private readonly registries = new Map<string, Promise<FileRegistry>>();

  constructor(
    readonly address: string,
    options: GrpcReflectOptions = {},
  ) {
    this.client = new Client(address, options.credentials ?? grpcCredentials.createInsecure(), options.channelOptions ?? {});
    this.versions = options.versions ?? ['v1', 'v1alpha'];
    this.deadlineMs = options.deadlineMs ?? 10_000;
  }

  close(): void {
    this.client.close();
  }

  /**
   * Sends several requests on ONE reflection stream and returns the answers in order. A request
   * the server cannot answer yields an `errorResponse` entry; the stream itself stays usable.
   */
  async exchange(requests: ReflectionRequest[]): Promise<ReflectionResponse[]> {
    if (this.version) return this.exchangeOn(this.version, requests);
    let last: unknown;
    for (const version of this.versions) {
      try {
        const out = await this.exchangeOn(version, requests);
        this.version = version;
        return out;
      } catch (err) {
        if (!isServiceError(err) || err.code !== Code.UNIMPLEMENTED) throw err;
        last = err;
      }
    }
    throw last instanceof Error ? last : new GrpcReflectError(Code.UNIMPLEMENTED, 'server reflection is not available');
  }

  private exchangeOn(version: ReflectionVersion, requests: ReflectionRequest[]): Promise<ReflectionResponse[]> {
    return new Promise((resolve, reject) => {
      const call = this.client.makeBidiStreamRequest(
        REFLECTION_PATHS[version],
        (req: ServerReflectionRequest) => Buffer.from(ServerReflectionRequest.encode(req).finish()),
        (buf: Buffer) => ServerReflectionResponse.decode(buf),
        new Metadata(),
        { deadline: Date.now() + this.deadlineMs },
      );
      const out: ReflectionResponse[] = [];
      call.on('data', (res: ReflectionResponse) => out.push(res));
      call.on('error', reject);
      call.on('status', (s) => {
        if (s.code !== Code.OK) return; // 'error' rejects
        if (out.length !== requests.length) {
          reject(new GrpcReflectError(Code.INTERNAL, `reflection (${version}) answered ${out.length} of ${requests.length} requests`));
        } else resolve(out);
      });
      for (const req of requests) call.write({ host: '', ...req });
      call.end();
    });
  }

  private async ask(req: ReflectionRequest): Promise<ReflectionResponse> {
    const [res] = await this.exchange([req]);
    if (!res) throw new GrpcReflectError(Code.INTERNAL, 'empty reflection answer');
    if (res.errorResponse) throw new GrpcReflectError(res.errorResponse.errorCode, res.errorResponse.errorMessage);
    return res;
  }

  /** The services the server says it serves (ListServices), sorted. */
  async listServices(): Promise<string[]> {
    const res = await this.ask({ listServices: '' });
    if (!res.listServicesResponse) throw new GrpcReflectError(Code.INTERNAL, 'ListServices: the answer holds no list_services_response');
    return res.listServicesResponse.service.map((s) => s.name).sort();
  }

  private async files(req: ReflectionRequest, what: string): Promise<FileDescriptorProto[]> {
    const res = await this.ask(req);
    if (!res.fileDescriptorResponse) throw new GrpcReflectError(Code.INTERNAL, `${what}: the answer holds no file_descriptor_response`);
    return res.fileDescriptorResponse.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
  }

  /** FileContainingSymbol: the declaring file and (per the protocol) its transitive imports. */
  fileContainingSymbol(symbol: string): Promise<FileDescriptorProto[]> {
    return this.files({ fileContainingSymbol: symbol }, `FileContainingSymbol(${symbol})`);
  }

  /** FileByFilename: the file and its transitive imports. */
  fileByFilename(name: string): Promise<FileDescriptorProto[]> {
    return this.files({ fileByFilename: name }, `FileByFilename(${name})`);
  }

  /**
   * Builds a registry for a symbol from ONE FileContainingSymbol answer. Throws (INTERNAL) if an
   * import is missing from the answer or a referenced type cannot be found, naming what is missing:
   * that is exactly what would break grpcurl and every other reflection client.
   */
  resolve(symbol: string): Promise<FileRegistry> {
    const key = symbol.replace(/^\./, '');
    let pending = this.registries.get(key);
    if (!pending) {
      pending = this.build(key);
      this.registries.set(key, pending);
      pending.catch(() => this.registries.delete(key));
    }
    return pending;
  }

  private async build(symbol: string): Promise<FileRegistry> {
    const files = await this.fileContainingSymbol(symbol);
    const byName = new Map(files.map((f) => [f.name, f]));
    const root = files.find((f) => declares(f, symbol)) ?? files[0];
    if (!root) throw new GrpcReflectError(Code.INTERNAL, `FileContainingSymbol(${symbol}) returned no files`);
    try {
      return createFileRegistry(root, (name) => byName.get(name));
    } catch (err) {
      throw new GrpcReflectError(
        Code.INTERNAL,
        `incomplete descriptors for ${symbol} from reflection (got ${files.map((f) => f.name).join(', ')}): ${(err as Error).message}`,
      );
    }
  }

  /** The service descriptor for a fully-qualified service name. */
  async service(name: string): Promise<{ registry: FileRegistry; service: DescService }> {
    const registry = await this.resolve(name);
    const service = registry.getService(name);
    if (!service) throw new GrpcReflectError(Code.NOT_FOUND, `${name} is not a service`);
    return { registry, service };
  }

  /** The method descriptor for `pkg.Service/Method` or `pkg.Service.Method`. */
  async method(name: string): Promise<{ registry: FileRegistry; method: DescMethod }> {
    const parsed = parseMethodName(name);
    const { registry, service } = await this.service(parsed.service);
    const method = service.methods.find((m) => m.name === parsed.method);
    if (!method) {
      throw new GrpcReflectError(Code.NOT_FOUND, `${parsed.service} has no method ${parsed.method} (it has ${service.methods.map((m) => m.name).join(', ')})`);
    }
    return { registry, method };
  }

  /** A human-readable, .proto-like description of a service, method, message or enum. */
  async describe(symbol: string): Promise<string> {
    const name = symbol.replace(/^\./, '');
    const registry = await this.resolve(name);
    const desc = registry.get(name);
    if (desc?.kind === 'service') return describeService(desc);
    if (desc?.kind === 'message') return describeMessage(desc);
    if (desc?.kind === 'enum') return describeEnum(desc);
    const dot = name.lastIndexOf('.');
    const parent = registry.get(name.slice(0, dot));
    if (parent?.kind === 'service') {
      const method = parent.methods.find((m) => m.name === name.slice(dot + 1));
      if (method) {
        return [`${name} is a method (${parent.file.proto.name}):`, describeMethod(method), '', describeMessage(method.input), describeMessage(method.output)].join('\n');
      }
    }
    if (parent?.kind === 'message') {
      const field = parent.fields.find((f) => f.name === name.slice(dot + 1));
      if (field) return `${name} is a field of ${parent.typeName} (${parent.file.proto.name}):\n${fieldLine(field, parent.file)}\n`;
    }
    throw new GrpcReflectError(Code.NOT_FOUND, `${name} was found by reflection but is not a service, method, message, enum or field`);
  }

  /**
   * Calls a unary method with a proto3-JSON request and returns the proto3-JSON response
   * (int64 as strings). A failure rejects with a grpc-js ServiceError (code, details, metadata
   * with the `grpc-status-details-bin` trailer) or a GrpcReflectError for local problems.
   */
  async callUnary(methodName: string, request: JsonValue, metadata: Metadata = new Metadata(), options: CallOptions = {}): Promise<JsonValue> {
    const { registry, method } = await this.method(methodName);
    if (method.methodKind !== 'unary') {
      throw new GrpcReflectError(Code.UNIMPLEMENTED, `${method.parent.typeName}/${method.name} is ${method.methodKind.replace('_', '-')}; only unary calls are supported`);
    }
    let bytes: Uint8Array;
    try {
      bytes = toBinary(method.input, fromJson(method.input, request, { registry }));
    } catch (err) {
      throw new GrpcReflectError(Code.INVALID_ARGUMENT, `request is not a valid ${method.input.typeName} in proto3 JSON: ${(err as Error).message}`);
    }
    const path = `/${method.parent.typeName}/${method.name}`;
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const call = this.client.makeUnaryRequest(
        path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from(bytes),
        metadata,
        { deadline: Date.now() + (options.deadlineMs ?? this.deadlineMs) },
        (err, value) => (err ? reject(err) : value ? resolve(value) : reject(new GrpcReflectError(Code.INTERNAL, 'empty response'))),
      );
      if (options.onHeaders) call.on('metadata', options.onHeaders);
      if (options.onTrailers) {
        const onTrailers = options.onTrailers;
        call.on('status', (s) => onTrailers(s.metadata));
      }
    });
    let response;
    try {
      response = fromBinary(method.output, reply);
    } catch (err) {
      throw new GrpcReflectError(Code.INTERNAL, `response is not a valid ${method.output.typeName}: ${(err as Error).message}`);
    }
    return toJson(method.output, response, {
      registry,
      useProtoFieldName: options.protoFieldNames ?? true,
      alwaysEmitImplicit: options.emitDefaults ?? false,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Rich error details

/** The lines the CLI prints for a failure: `ERROR: CODE: details` and any rich details. */
export function formatError(err: unknown): string[] {
  if (!(err instanceof GrpcReflectError) && !isServiceError(err)) return [`ERROR: ${err instanceof Error ? err.message : String(err)}`];
  const lines = [`ERROR: ${codeName(err.code)}: ${err.details}`];
  const details = statusDetailsOf(err.metadata);
  if (details?.errorInfo) {
    const { reason, domain, metadata } = details.errorInfo;
    lines.push(`  reason: ${reason}`, `  domain: ${domain}`);
    const entries = Object.entries(metadata);
    if (entries.length > 0) lines.push('  metadata:', ...entries.map(([k, v]) => `    ${k}: ${v}`));
  }
  for (const v of details?.badRequest?.fieldViolations ?? []) lines.push(`  field violation: ${v.field}: ${v.description}`);
  for (const url of details?.other ?? []) lines.push(`  detail: ${url}`);
  return lines;
}

// ---------------------------------------------------------------------------------------------
// Describe: .proto-like text, with the doc comments buf keeps in the descriptor set

/** Path of a descriptor inside its file's source_code_info (descriptor.proto field numbers). */
function sourcePath(desc: DescMessage | DescEnum | DescService | DescMethod | DescField): number[] | undefined {
  switch (desc.kind) {
    case 'service':
      return [6, desc.file.proto.service.indexOf(desc.proto)];
    case 'rpc':
      return [...(sourcePath(desc.parent) ?? []), 2, desc.parent.proto.method.indexOf(desc.proto)];
    case 'message':
      return desc.parent ? [...(sourcePath(desc.parent) ?? []), 3, desc.parent.proto.nestedType.indexOf(desc.proto)] : [4, desc.file.proto.messageType.indexOf(desc.proto)];
    case 'enum':
      return desc.parent ? [...(sourcePath(desc.parent) ?? []), 4, desc.parent.proto.enumType.indexOf(desc.proto)] : [5, desc.file.proto.enumType.indexOf(desc.proto)];
    case 'field':
      return [...(sourcePath(desc.parent) ?? []), 2, desc.parent.proto.field.indexOf(desc.proto)];
    default:
      return undefined;
  }
}

function fileOf(desc: DescMessage | DescEnum | DescService | DescMethod | DescField): DescFile {
  return desc.kind === 'rpc' || desc.kind === 'field' ? desc.parent.file : desc.file;
}

function comment(desc: DescMessage | DescEnum | DescService | DescMethod | DescField, indent: string): string[] {
  const path = sourcePath(desc)?.join(',');
  const loc = fileOf(desc).proto.sourceCodeInfo?.location.find((l) => l.path.join(',') === path);
  const text = loc?.leadingComments?.replace(/\n$/, '');
  return text ? text.split('\n').map((l) => `${indent}//${l.startsWith(' ') || l === '' ? '' : ' '}${l}`.trimEnd()) : [];
}

function scalarName(t: ScalarType): string {
  return ScalarType[t].toLowerCase();
}

function fieldType(f: DescField): string {
  switch (f.fieldKind) {
    case 'scalar':
      return scalarName(f.scalar);
    case 'enum':
      return f.enum.typeName;
    case 'message':
      return f.message.typeName;
    case 'list':
      return `repeated ${f.listKind === 'scalar' ? scalarName(f.scalar) : f.listKind === 'enum' ? f.enum.typeName : f.message.typeName}`;
    case 'map':
      return `map<${scalarName(f.mapKey)}, ${f.mapKind === 'scalar' ? scalarName(f.scalar) : f.mapKind === 'enum' ? f.enum.typeName : f.message.typeName}>`;
  }
}

/** The file a field's message or enum type comes from. */
function typeFile(f: DescField): DescFile | undefined {
  const t = f.message ?? f.enum;
  return t?.file;
}

function fieldLine(f: DescField, home: DescFile, indent = '  '): string {
  const optional = f.proto.proto3Optional ? 'optional ' : '';
  const notes: string[] = [];
  const from = typeFile(f);
  if (from && from.proto.name !== home.proto.name) notes.push(`from ${from.proto.name}`);
  if (f.oneof && !f.proto.proto3Optional) notes.push(`oneof ${f.oneof.name}`);
  if (f.deprecated) notes.push('deprecated');
  return `${indent}${optional}${fieldType(f)} ${f.name} = ${f.number};${notes.length ? `  // ${notes.join('; ')}` : ''}`;
}

function describeMethod(m: DescMethod, indent = ''): string {
  const stream = (yes: boolean) => (yes ? 'stream ' : '');
  const client = m.methodKind === 'client_streaming' || m.methodKind === 'bidi_streaming';
  const server = m.methodKind === 'server_streaming' || m.methodKind === 'bidi_streaming';
  return [...comment(m, indent), `${indent}rpc ${m.name}(${stream(client)}${m.input.typeName}) returns (${stream(server)}${m.output.typeName});`].join('\n');
}

function describeService(s: DescService): string {
  return [
    `${s.typeName} is a service (${s.file.proto.name}):`,
    ...comment(s, ''),
    `service ${s.name} {`,
    ...s.methods.map((m) => describeMethod(m, '  ')),
    '}',
    '',
  ].join('\n');
}

function describeMessage(m: DescMessage): string {
  const lines = [`${m.typeName} is a message (${m.file.proto.name}):`, ...comment(m, ''), `message ${m.name} {`];
  for (const f of m.fields) lines.push(...comment(f, '  '), fieldLine(f, m.file));
  lines.push('}', '');
  return lines.join('\n');
}

function describeEnum(e: DescEnum): string {
  return [`${e.typeName} is an enum (${e.file.proto.name}):`, ...comment(e, ''), `enum ${e.name} {`, ...e.values.map((v) => `  ${v.name} = ${v.number};`), '}', ''].join('\n');
}

// ---------------------------------------------------------------------------------------------
// CLI

export const USAGE = `usage: node dist/scripts/grpc-reflect.js <address> <command> [options]

A grpcurl-like client that learns every type through server reflection. Plaintext, or mutual
TLS with the operator's certificate when GRPC_TLS_DIR is set (a folder with ca.crt, tls.crt,
tls.key, e.g. .livemesh/tls/operator).

commands:
  list [service]                 services the server serves, or the methods of one service
  describe [symbol]              a service, method (pkg.Service.Method), message or enum;
                                 without a symbol, every service
  call <method> ['<json>' | -]   a unary call; method as pkg.Service/Method or pkg.Service.Method,
                                 request as proto3 JSON (default {}; - reads stdin). int64 as
                                 strings; a FieldMask is one string of lowerCamelCase paths
                                 ("title,createTime"); a Timestamp is RFC 3339

options (call):
  -H, --header 'key: value'      request metadata; repeatable. Keys ending in -bin take base64.
                                 The services trust only a signed token:
                                 -H "authorization: Bearer $TOKEN"
  --emit-defaults                print fields that hold default values
  --camel                        print lowerCamelCase JSON names instead of .proto field names
  --timeout <ms>                 deadline (default 10000)
  -v, --verbose                  print response headers and trailers to stderr

options (all, with GRPC_TLS_DIR):
  --server-name <service>        the name the server's certificate must carry (room, gift, ...);
                                 needed when the address is not localhost/127.0.0.1 (a pod IP)

examples:
  node dist/scripts/grpc-reflect.js 127.0.0.1:50051 list
  node dist/scripts/grpc-reflect.js 127.0.0.1:50051 describe livemesh.room.v1.RoomService
  node dist/scripts/grpc-reflect.js 127.0.0.1:50051 call livemesh.room.v1.RoomService/GetRoom \\
      '{"room_id": "42", "read_mask": "title,status"}' -H "authorization: Bearer $TOKEN"
  (TOKEN=$(npm run -s auth -- token user 7 --role viewer) first: a viewer's token, for an hour)

On failure prints "ERROR: <CODE>: <details>" (with google.rpc.ErrorInfo reason/domain/metadata
when the server sent them) and exits 1; a usage mistake exits 2.`;

class UsageError extends Error {}

interface CliArgs {
  address: string;
  command: string;
  rest: string[];
  headers: Array<[string, string]>;
  emitDefaults: boolean;
  camel: boolean;
  timeoutMs: number;
  verbose: boolean;
  serverName: string | undefined;
}

function parseArgs(argv: string[]): CliArgs {
  const positional: string[] = [];
  const out = { headers: [] as Array<[string, string]>, emitDefaults: false, camel: false, timeoutMs: 10_000, verbose: false, serverName: undefined as string | undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    if (a === '-H' || a === '--header') {
      const h = value();
      const colon = h.indexOf(':');
      if (colon <= 0) throw new UsageError(`bad header ${JSON.stringify(h)}: want 'key: value'`);
      out.headers.push([h.slice(0, colon).trim().toLowerCase(), h.slice(colon + 1).trim()]);
    } else if (a === '--emit-defaults') out.emitDefaults = true;
    else if (a === '--camel') out.camel = true;
    else if (a === '-v' || a === '--verbose') out.verbose = true;
    else if (a === '--timeout') {
      out.timeoutMs = Number(value());
      if (!Number.isFinite(out.timeoutMs) || out.timeoutMs <= 0) throw new UsageError('--timeout wants a positive number of milliseconds');
    } else if (a === '--server-name') out.serverName = value();
    else if (a === '-h' || a === '--help') throw new UsageError('');
    else if (a.startsWith('-') && a !== '-') throw new UsageError(`unknown option ${a}`);
    else positional.push(a);
  }
  const [address, command, ...rest] = positional;
  if (!address || !command) throw new UsageError('an address and a command are required');
  return { address, command, rest, ...out };
}

function printMetadata(label: string, md: Metadata): void {
  for (const [k, v] of Object.entries(md.getMap())) {
    if (k === STATUS_DETAILS_KEY) continue;
    process.stderr.write(`${label} ${k}: ${typeof v === 'string' ? v : v.toString('base64')}\n`);
  }
}

/** Runs the CLI; returns the exit code. Exported so it can be driven in-process. */
export async function main(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  let args: CliArgs;
  try {
    args = parseArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    if (err.message) process.stderr.write(`grpc-reflect: ${err.message}\n\n`);
    process.stderr.write(`${USAGE}\n`);
    return err.message ? 2 : 0;
  }
  let client: GrpcReflect;
  try {
    const tls = Boolean(process.env.GRPC_TLS_DIR);
    // A loopback IP is checked as `localhost` (which the development certificates also list): Node
    // warns about TLS server names that are IP addresses.
    const serverName = args.serverName ?? (/^(127\.0\.0\.1|\[::1\]):/.test(args.address) ? 'localhost' : undefined);
    client = new GrpcReflect(args.address, {
      deadlineMs: args.timeoutMs,
      credentials: operatorChannelCredentials(),
      ...(tls && serverName ? { channelOptions: { 'grpc.ssl_target_name_override': serverName } } : {}),
    });
  } catch (err) {
    // A GRPC_TLS_DIR without the certificate files.
    process.stderr.write(`grpc-reflect: GRPC_TLS_DIR ${process.env.GRPC_TLS_DIR ?? ''}: ${(err as Error).message}\n`);
    return 2;
  }
  try {
    switch (args.command) {
      case 'list': {
        if (args.rest.length > 1) throw new UsageError('list takes at most one service');
        const [service] = args.rest;
        const names = service ? (await client.service(service)).service.methods.map((m) => `${service}.${m.name}`) : await client.listServices();
        out(names.map((n) => `${n}\n`).join(''));
        return 0;
      }
      case 'describe': {
        if (args.rest.length > 1) throw new UsageError('describe takes at most one symbol');
        const symbols = args.rest.length ? args.rest : await client.listServices();
        for (const s of symbols) out(`${await client.describe(s)}\n`);
        return 0;
      }
      case 'call': {
        const [method, body = '{}', ...extra] = args.rest;
        if (!method || extra.length > 0) throw new UsageError('call takes a method and at most one JSON request');
        const text = body === '-' ? readFileSync(0, 'utf8') : body;
        let request: JsonValue;
        try {
          request = JSON.parse(text) as JsonValue;
        } catch (err) {
          throw new GrpcReflectError(Code.INVALID_ARGUMENT, `request is not JSON: ${(err as Error).message}`);
        }
        const md = new Metadata();
        for (const [k, v] of args.headers) md.add(k, k.endsWith('-bin') ? Buffer.from(v, 'base64') : v);
        const response = await client.callUnary(method, request, md, {
          deadlineMs: args.timeoutMs,
          emitDefaults: args.emitDefaults,
          protoFieldNames: !args.camel,
          ...(args.verbose ? { onHeaders: (h: Metadata) => printMetadata('<', h), onTrailers: (t: Metadata) => printMetadata('< trailer', t) } : {}),
        });
        out(`${JSON.stringify(response, null, 2)}\n`);
        return 0;
      }
      default:
        throw new UsageError(`unknown command ${JSON.stringify(args.command)}`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`grpc-reflect: ${err.message}\n\n${USAGE}\n`);
      return 2;
    }
    process.stderr.write(`${formatError(err).join('\n')}\n`);
    return 1;
  } finally {
    client.close();
  }
}

function isMainModule(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMainModule()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`ERROR: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
