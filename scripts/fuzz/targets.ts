/**
 * gRPC methods and BFF routes as runner targets: how each makes, sends, judges and reproduces a case.
 */
import type { Agent } from 'node:http';
import type { FileRegistry } from '@bufbuild/protobuf';
import { codeName, httpFailure, httpStatusLabel, refusalFailure, rpcFailure, type HttpRules } from './classify.js';
import { describeRequest, type RpcClients, type RpcTarget } from './grpc-target.js';
import { curlOf, httpCase, sendHttp, type HttpCase, type RouteTarget, type TokenPool } from './http-target.js';
import { rpcCase, type RpcCase } from './rpc-cases.js';
import type { Target } from './runner.js';
import type { Known } from './values.js';

export function rpcFuzzTarget(target: RpcTarget, clients: RpcClients, registry: FileRegistry, known: Known): Target<RpcCase> {
  return {
    name: target.name,
    kind: 'rpc',
    make: (rng) => rpcCase(target, rng, known),
    async send(c) {
      const out = await clients.call(target, c);
      return { label: codeName(out.code), failure: rpcFailure(out) ?? (c.mustRefuse ? refusalFailure(out, c.mustRefuse) : undefined), detail: out.details };
    },
    reproduce(c) {
      const md = c.metadata.map(([k, v]) => `${k}: ${typeof v === 'string' ? v : `base64:${v.toString('base64')}`}`);
      const json = describeRequest(registry, target, c.bytes);
      const timing = c.cancelAfterMs !== undefined ? `cancelled after ${c.cancelAfterMs} ms` : `deadline ${c.deadlineMs} ms`;
      const b64 = Buffer.from(c.bytes).toString('base64');
      return [
        `${target.path} (${c.kind}${c.mustRefuse ? `: must be refused, ${c.mustRefuse}` : ''}, ${timing})`,
        `  metadata: ${md.length > 0 ? md.join(' | ') : '(none)'}`,
        `  request bytes (${c.bytes.length}), base64: ${b64.length > 4000 ? `${b64.slice(0, 4000)}… (truncated)` : b64}`,
        ...(json !== undefined ? [`  as JSON: ${json.length > 2000 ? `${json.slice(0, 2000)}…` : json}`] : ['  (does not decode as the request type)']),
      ].join('\n');
    },
  };
}

export function httpFuzzTarget(route: RouteTarget, baseUrl: string, agent: Agent, known: Known, tokens: TokenPool, rules: HttpRules & { bodyLimit: number }): Target<HttpCase> {
  return {
    name: route.name,
    kind: 'http',
    make: (rng) => httpCase(route, rng, known, tokens, rules.bodyLimit),
    async send(c) {
      const out = await sendHttp(baseUrl, agent, c);
      return { label: httpStatusLabel(out), failure: httpFailure(out, { ...rules, mayReset: c.mayReset }), detail: out.error ?? out.body };
    },
    reproduce: (c) => `${c.method} ${c.path}${c.upgrade ? ' (WebSocket upgrade)' : ''}\n  ${curlOf(baseUrl, c)}`,
  };
}
