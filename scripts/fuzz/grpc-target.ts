/**
 * A generic gRPC client built from the descriptor set: every method of the five services, called
 * with raw request bytes, so the fuzzer needs no generated code and no per-RPC wiring. Unary calls
 * and server streams (read until the status arrives) are both covered.
 */
import { readFileSync } from 'node:fs';
import { Client, credentials, Metadata, status as Code } from '@grpc/grpc-js';
import { createFileRegistry, fromBinary, toJson, type DescMethod, type DescService, type FileRegistry } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { descriptorSetPath } from '../../kit/reflection.js';
import { errorInfoOf } from '../../kit/grpc-errors.js';

/** The services whose every RPC the fuzzer calls. */
const FUZZED_PACKAGES = ['livemesh.room.v1', 'livemesh.gift.v1', 'livemesh.ledger.v1', 'livemesh.chat.v1', 'livemesh.ranking.v1'];

export interface RpcTarget {
  /** `livemesh.room.v1.RoomService/GetRoom` */
  name: string;
  /** `/livemesh.room.v1.RoomService/GetRoom` */
  path: string;
  service: DescService;
  method: DescMethod;
  /** 'room', 'gift', …: which mesh processes serve it. */
  serviceName: string;
}

export function loadRegistry(path: string = descriptorSetPath()): FileRegistry {
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(path)));
}

/** Every unary and server-streaming method of the fuzzed packages, in declaration order. */
export function rpcTargets(registry: FileRegistry): RpcTarget[] {
  const out: RpcTarget[] = [];
  for (const file of registry.files) {
    for (const service of file.services) {
      const pkg = service.typeName.slice(0, service.typeName.lastIndexOf('.'));
      if (!FUZZED_PACKAGES.includes(pkg)) continue;
      for (const method of service.methods) {
        if (method.methodKind !== 'unary' && method.methodKind !== 'server_streaming') continue;
        out.push({ name: `${service.typeName}/${method.name}`, path: `/${service.typeName}/${method.name}`, service, method, serviceName: pkg.split('.')[1] ?? '' });
      }
    }
  }
  return out;
}

/** Every field name of every message in the fuzzed packages: the vocabulary of field masks. */
export function fieldNamesOf(registry: FileRegistry): string[] {
  const names = new Set<string>();
  for (const file of registry.files) {
    if (!FUZZED_PACKAGES.includes(file.proto.package)) continue;
    for (const m of file.messages) for (const f of m.fields) names.add(f.name);
  }
  return [...names];
}

/** What one call ended with. */
export interface RpcOutcome {
  code: Code;
  details: string;
  /** ErrorInfo.reason from the status details, when the server sent one. */
  reason: string | undefined;
  /** Set when a response message did not decode as the method's output type. */
  badResponse?: string;
  /** Messages received before the status (server streams). */
  messages: number;
  /** The last response message, as received. */
  response?: Buffer;
}

export interface RpcCall {
  bytes: Uint8Array;
  /** Metadata entries, added in order (a key may repeat). */
  metadata: Array<[string, string | Buffer]>;
  deadlineMs: number;
  /** Cancel the call from the client this long after it starts. */
  cancelAfterMs?: number;
}

const identity = (b: Buffer): Buffer => b;
const toBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** Channels to every replica of every service, reused across calls. */
export class RpcClients {
  private readonly clients = new Map<string, Client[]>();
  private next = 0;

  constructor(private readonly addresses: (service: string) => string[]) {}

  private clientsFor(service: string): Client[] {
    let list = this.clients.get(service);
    if (!list) {
      list = this.addresses(service).map(
        (addr) =>
          new Client(addr, credentials.createInsecure(), {
            'grpc.max_send_message_length': -1,
            'grpc.max_receive_message_length': -1,
            // Each replica its own channel: the fuzzer chooses the replica, not a balancer.
            'grpc.use_local_subchannel_pool': 1,
          }),
      );
      if (list.length === 0) throw new Error(`no replicas of ${service}`);
      this.clients.set(service, list);
    }
    return list;
  }

  /** Calls one replica (round-robin) and resolves with how the call ended; never rejects. */
  call(target: RpcTarget, req: RpcCall): Promise<RpcOutcome & { replica: number }> {
    const list = this.clientsFor(target.serviceName);
    const replica = this.next++ % list.length;
    const client = list[replica] as Client;
    const md = new Metadata();
    for (const [k, v] of req.metadata) md.add(k, v);
    const options = { deadline: Date.now() + req.deadlineMs };
    const output = target.method.output;
    let badResponse: string | undefined;
    let messages = 0;
    let last: Buffer | undefined;
    const check = (res: Buffer) => {
      messages++;
      last = res;
      try {
        fromBinary(output, res);
      } catch (err) {
        badResponse ??= `response does not decode as ${output.typeName}: ${(err as Error).message} (base64 ${res.toString('base64').slice(0, 200)})`;
      }
    };
    return new Promise((resolve) => {
      const done = (code: Code, details: string, metadata: Metadata | undefined) =>
        resolve({ code, details, reason: reasonOf(metadata), badResponse, messages, replica, response: last });
      if (target.method.methodKind === 'unary') {
        const call = client.makeUnaryRequest(target.path, identity, identity, toBuffer(req.bytes), md, options, (err, res) => {
          if (err) done(err.code, err.details, err.metadata);
          else {
            if (res) check(res);
            done(Code.OK, '', undefined);
          }
        });
        if (req.cancelAfterMs !== undefined) setTimeout(() => call.cancel(), req.cancelAfterMs).unref();
        return;
      }
      const stream = client.makeServerStreamRequest(target.path, identity, identity, toBuffer(req.bytes), md, options);
      stream.on('data', (res: Buffer) => check(res));
      // The status event comes after the last message; 'error' repeats a non-OK status.
      stream.on('error', () => undefined);
      stream.on('status', (s: { code: Code; details: string; metadata: Metadata }) => done(s.code, s.details, s.metadata));
      if (req.cancelAfterMs !== undefined) setTimeout(() => stream.cancel(), req.cancelAfterMs).unref();
    });
  }

  close(): void {
    for (const list of this.clients.values()) for (const c of list) c.close();
    this.clients.clear();
  }
}

function reasonOf(metadata: Metadata | undefined): string | undefined {
  try {
    return errorInfoOf(metadata)?.reason;
  } catch {
    return 'UNDECODABLE_STATUS_DETAILS';
  }
}

/** The request as JSON when it decodes, for reproducers a person can read. */
export function describeRequest(registry: FileRegistry, target: RpcTarget, bytes: Uint8Array): string | undefined {
  try {
    return JSON.stringify(toJson(target.method.input, fromBinary(target.method.input, bytes), { registry }));
  } catch {
    return undefined;
  }
}
