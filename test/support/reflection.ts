/**
 * What the reflection tests need beyond `buf curl`: the raw reflection stream (to look at the
 * exact FileDescriptorProtos and error_response entries a server sends, which no CLI shows) and a
 * protobuf-es registry built from one FileContainingSymbol answer, the way any reflection client
 * resolves a service. Listing and calling go through `buf curl` (see bufCurl).
 */
import { spawn } from 'node:child_process';
import { Client, credentials, Metadata, status as Code } from '@grpc/grpc-js';
import { createFileRegistry, fromBinary, type DescService, type FileRegistry } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, type FileDescriptorProto } from '@bufbuild/protobuf/wkt';
import * as v1 from '../../gen/ts/grpc/reflection/v1/reflection.js';
import * as v1alpha from '../../gen/ts/grpc/reflection/v1alpha/reflection.js';
import { fromRoot } from '../../kit/paths.js';

export type ReflectionVersion = 'v1' | 'v1alpha';
type Request = Partial<v1.ServerReflectionRequest>;

/** Sends several requests on ONE reflection stream and returns the answers in order. */
export function exchange(address: string, requests: Request[], version: ReflectionVersion = 'v1'): Promise<v1.ServerReflectionResponse[]> {
  const pb = version === 'v1' ? v1 : v1alpha;
  const method = pb.ServerReflectionService.serverReflectionInfo;
  const client = new Client(address, credentials.createInsecure());
  return new Promise<v1.ServerReflectionResponse[]>((resolve, reject) => {
    const call = client.makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, new Metadata(), { deadline: Date.now() + 10_000 });
    const out: v1.ServerReflectionResponse[] = [];
    call.on('data', (res: v1.ServerReflectionResponse) => out.push(res));
    call.on('error', reject);
    call.on('status', (s) => {
      if (s.code !== Code.OK) return; // 'error' rejects
      if (out.length === requests.length) resolve(out);
      else reject(new Error(`reflection (${version}) answered ${out.length} of ${requests.length} requests`));
    });
    for (const req of requests) call.write(pb.ServerReflectionRequest.fromPartial(req));
    call.end();
  }).finally(() => client.close());
}

/** FileContainingSymbol: the declaring file first, then (per the protocol) its transitive imports. */
export async function fileContainingSymbol(address: string, symbol: string): Promise<FileDescriptorProto[]> {
  const [res] = await exchange(address, [{ fileContainingSymbol: symbol }]);
  if (res?.errorResponse) throw new Error(`FileContainingSymbol(${symbol}): ${Code[res.errorResponse.errorCode]} ${res.errorResponse.errorMessage}`);
  if (!res?.fileDescriptorResponse) throw new Error(`FileContainingSymbol(${symbol}): no file_descriptor_response`);
  return res.fileDescriptorResponse.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
}

/** A registry from ONE FileContainingSymbol answer; throws, naming what is missing, if the answer is incomplete. */
export async function reflectedService(address: string, service: string): Promise<{ registry: FileRegistry; service: DescService }> {
  const files = await fileContainingSymbol(address, service);
  const byName = new Map(files.map((f) => [f.name, f]));
  const root = files[0];
  if (!root) throw new Error(`FileContainingSymbol(${service}) returned no files`);
  const registry = createFileRegistry(root, (name) => byName.get(name));
  const desc = registry.getService(service);
  if (!desc) throw new Error(`${service} is not in the reflected files`);
  return { registry, service: desc };
}

export interface BufResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `buf curl --protocol grpc` (node_modules/.bin/buf, installed with the project) against a
 * plaintext server: `target` is 'host:port' or 'host:port/pkg.Service/Method'.
 */
export function bufCurl(target: string, args: readonly string[] = []): Promise<BufResult> {
  return runCommand(fromRoot('node_modules', '.bin', 'buf'), ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', ...args, `http://${target}`]);
}

/** Runs a command to its end, feeding it `stdin`, and collects what it printed. */
export function runCommand(cmd: string, args: readonly string[], stdin = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

/** buf curl's exit status for a failed RPC: the gRPC code shifted left by three (usage errors are below 8). */
export const bufExitCode = (code: Code): number => code << 3;

/** A failed RPC as buf curl prints it on stderr: Connect's JSON error, details base64-encoded. */
export interface BufError {
  code: string;
  message: string;
  details?: Array<{ type: string; value: string }>;
}

export function bufError(stderr: string): BufError {
  return JSON.parse(stderr) as BufError;
}
