import { readFileSync } from 'node:fs';
import type { Server, ServerDuplexStream } from '@grpc/grpc-js';
import { status as Code } from '@grpc/grpc-js';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { FileDescriptorProto, type DescriptorProto, type EnumDescriptorProto } from '../gen/ts/google/protobuf/descriptor.js';
import * as v1 from '../gen/ts/grpc/reflection/v1/reflection.js';
import * as v1alpha from '../gen/ts/grpc/reflection/v1alpha/reflection.js';
import { fromRoot } from './paths.js';

/** Where `npm run gen` writes the descriptor set that `buf build` produced. */
export const descriptorSetPath = (): string => fromRoot('gen', 'descriptor.binpb');

interface IndexedFile {
  name: string;
  /** The exact bytes buf emitted: served as-is, so options and source comments survive untouched. */
  bytes: Buffer;
  dependencies: string[];
}

/**
 * Index over a FileDescriptorSet, answering the questions server reflection asks: which file holds
 * a symbol, what a file depends on, which extensions a message has.
 *
 * Built from buf's descriptor set rather than from @grpc/proto-loader, whose descriptors arrive
 * with empty dependency lists (grpc-node #2595) and make grpcurl fail on imported types.
 */
export class DescriptorIndex {
  private readonly files = new Map<string, IndexedFile>();
  private readonly symbols = new Map<string, string>();
  private readonly extensionsByType = new Map<string, Map<number, string>>();

  constructor(descriptorSet: Uint8Array) {
    const reader = new BinaryReader(descriptorSet);
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === 1 && wireType === WireType.LengthDelimited) this.addFile(Buffer.from(reader.bytes()));
      else reader.skip(wireType);
    }
  }

  static fromFile(path: string = descriptorSetPath()): DescriptorIndex {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (err) {
      throw new Error(`cannot read the descriptor set at ${path}; run \`npm run gen\` (${(err as Error).message})`);
    }
    return new DescriptorIndex(bytes);
  }

  private addFile(bytes: Buffer): void {
    const fd = FileDescriptorProto.decode(bytes);
    const name = fd.name ?? '';
    this.files.set(name, { name, bytes, dependencies: fd.dependency });
    const pkg = fd.package ? `${fd.package}.` : '';
    const addMessage = (m: DescriptorProto, scope: string) => {
      const full = `${scope}${m.name ?? ''}`;
      this.symbols.set(full, name);
      for (const f of m.field) this.symbols.set(`${full}.${f.name ?? ''}`, name);
      for (const e of m.enumType) addEnum(e, `${full}.`);
      for (const ext of m.extension) this.addExtension(ext.extendee ?? '', ext.number ?? 0, name, `${full}.${ext.name ?? ''}`);
      for (const nested of m.nestedType) addMessage(nested, `${full}.`);
    };
    // Enum values are scoped as siblings of their enum, as in protoc's symbol table.
    const addEnum = (e: EnumDescriptorProto, scope: string) => {
      this.symbols.set(`${scope}${e.name ?? ''}`, name);
      for (const v of e.value) this.symbols.set(`${scope}${v.name ?? ''}`, name);
    };
    for (const m of fd.messageType) addMessage(m, pkg);
    for (const e of fd.enumType) addEnum(e, pkg);
    for (const s of fd.service) {
      const full = `${pkg}${s.name ?? ''}`;
      this.symbols.set(full, name);
      for (const m of s.method) this.symbols.set(`${full}.${m.name ?? ''}`, name);
    }
    for (const ext of fd.extension) this.addExtension(ext.extendee ?? '', ext.number ?? 0, name, `${pkg}${ext.name ?? ''}`);
  }

  private addExtension(extendee: string, number: number, file: string, symbol: string): void {
    const type = extendee.replace(/^\./, '');
    let byNumber = this.extensionsByType.get(type);
    if (!byNumber) this.extensionsByType.set(type, (byNumber = new Map<number, string>()));
    byNumber.set(number, file);
    this.symbols.set(symbol, file);
  }

  hasFile(name: string): boolean {
    return this.files.has(name);
  }

  fileOfSymbol(symbol: string): string | undefined {
    return this.symbols.get(symbol.replace(/^\./, ''));
  }

  fileOfExtension(type: string, number: number): string | undefined {
    return this.extensionsByType.get(type)?.get(number);
  }

  extensionNumbers(type: string): number[] | undefined {
    if (!this.symbols.has(type)) return undefined;
    return [...(this.extensionsByType.get(type)?.keys() ?? [])].sort((a, b) => a - b);
  }

  /** The file followed by every file it imports, transitively, each once. */
  closure(name: string): Buffer[] {
    const out: Buffer[] = [];
    const seen = new Set<string>();
    const visit = (n: string) => {
      if (seen.has(n)) return;
      seen.add(n);
      const file = this.files.get(n);
      if (!file) return;
      out.push(file.bytes);
      file.dependencies.forEach(visit);
    };
    visit(name);
    return out;
  }
}

type Request = v1.ServerReflectionRequest;
type Response = v1.ServerReflectionResponse;

/** Answers one reflection request; shared by the v1 and v1alpha services, whose messages are identical. */
export function answer(index: DescriptorIndex, services: () => string[], req: Request): Response {
  const base: Response = { validHost: req.host, originalRequest: req };
  const files = (name: string | undefined, what: string): Response =>
    name ? { ...base, fileDescriptorResponse: { fileDescriptorProto: index.closure(name) } } : notFound(what);
  const notFound = (what: string): Response => ({ ...base, errorResponse: { errorCode: Code.NOT_FOUND, errorMessage: `${what} not found` } });

  if (req.listServices !== undefined) {
    return { ...base, listServicesResponse: { service: services().map((name) => ({ name })) } };
  }
  if (req.fileByFilename !== undefined) {
    return files(index.hasFile(req.fileByFilename) ? req.fileByFilename : undefined, `file ${req.fileByFilename}`);
  }
  if (req.fileContainingSymbol !== undefined) {
    return files(index.fileOfSymbol(req.fileContainingSymbol), `symbol ${req.fileContainingSymbol}`);
  }
  if (req.fileContainingExtension !== undefined) {
    const { containingType, extensionNumber } = req.fileContainingExtension;
    return files(index.fileOfExtension(containingType, extensionNumber), `extension ${extensionNumber} of ${containingType}`);
  }
  if (req.allExtensionNumbersOfType !== undefined) {
    const numbers = index.extensionNumbers(req.allExtensionNumbersOfType);
    if (!numbers) return notFound(`type ${req.allExtensionNumbersOfType}`);
    return { ...base, allExtensionNumbersResponse: { baseTypeName: req.allExtensionNumbersOfType, extensionNumber: numbers } };
  }
  return { ...base, errorResponse: { errorCode: Code.INVALID_ARGUMENT, errorMessage: 'empty reflection request: set one of the message_request fields' } };
}

function streamHandler(index: DescriptorIndex, services: () => string[]) {
  return (call: ServerDuplexStream<Request, Response>) => {
    call.on('data', (req: Request) => call.write(answer(index, services, req)));
    call.on('end', () => call.end());
    call.on('error', () => call.end());
  };
}

/**
 * Registers grpc.reflection.v1 and v1alpha (grpcurl and most tools try v1 first, older ones only
 * know v1alpha). `services` lists what ListServices returns: the services actually registered.
 */
export function addReflection(server: Server, index: DescriptorIndex, services: () => string[]): void {
  const handler = streamHandler(index, services);
  server.addService(v1.ServerReflectionService, { serverReflectionInfo: handler });
  server.addService(v1alpha.ServerReflectionService, { serverReflectionInfo: handler });
}
