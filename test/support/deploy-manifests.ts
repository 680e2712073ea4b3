/**
 * Offline checks of deploy/: the compose file against the compose-spec JSON schema (the copy dclint
 * ships), Kubernetes objects against the Kubernetes OpenAPI schemas (kubernetes-models' generated
 * validators), and kustomize rendering through kubectl when it is installed. No Docker engine or
 * cluster is needed; what only a cluster would notice (a selector that matches nothing, a Secret
 * that does not exist) is checked by the tests themselves on the parsed objects.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- parsed YAML (compose files, Kubernetes objects) is walked field by field; the schema validation is what types it */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { Ajv } from 'ajv';
import { parseAllDocuments } from 'yaml';
import { fromRoot } from '../../kit/paths.js';

/** A parsed manifest object, with the file it came from for messages. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  /** Walked field by field by the tests; the schema validation is what types it. */
  spec?: any;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  source: string;
}

/** Every document of a YAML text, with merge keys (`<<: *anchor`) resolved; a syntax error throws naming the file. */
export function parseYamlDocuments(text: string, source: string): unknown[] {
  return parseAllDocuments(text, { merge: true }).flatMap((doc) => {
    if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value: unknown = doc.toJS();
    return value === null || value === undefined ? [] : [value];
  });
}

/** YAML files under a folder of the repository, recursively, as repository-relative paths. */
export function yamlFilesUnder(folder: string): string[] {
  const root = fromRoot();
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return walk(path);
      return /\.ya?ml$/.test(entry.name) ? [relative(root, path)] : [];
    });
  return walk(fromRoot(folder)).sort();
}

export function readObjects(file: string): K8sObject[] {
  return parseYamlDocuments(readFileSync(fromRoot(file), 'utf8'), file).map((o) => ({ ...(o as Omit<K8sObject, 'source'>), source: file }));
}

type Model = new (data: unknown) => { validate(): void };

/**
 * Validates one object against its Kubernetes schema: kubernetes-models has one class per
 * apiVersion and kind (`kubernetes-models/apps/v1/Deployment`), whose validate() runs the
 * validator generated from the OpenAPI spec. Returns the error, or undefined when valid.
 */
export async function k8sSchemaError(object: K8sObject): Promise<string | undefined> {
  const { source, ...manifest } = object;
  let Class: Model;
  try {
    const mod = (await import(/* @vite-ignore */ `kubernetes-models/${manifest.apiVersion}/${manifest.kind}`)) as Record<string, Model>;
    const found = mod[manifest.kind];
    if (!found) throw new Error('no class');
    Class = found;
  } catch {
    return `${source}: unknown apiVersion/kind ${manifest.apiVersion}/${manifest.kind}`;
  }
  try {
    new Class(manifest).validate();
    return undefined;
  } catch (err) {
    return `${source}: ${manifest.kind}/${manifest.metadata?.name}: ${err instanceof Error ? err.message : String(err)}`;
  }
}

let composeValidator: ReturnType<Ajv['compile']> | undefined;

/** Compose-spec schema errors of a parsed compose file (empty when valid). */
export function composeSchemaErrors(compose: unknown): string[] {
  if (!composeValidator) {
    // dclint's exports hide its schemas/ folder, so the file is found next to its package.json.
    const dir = dirname(createRequire(import.meta.url).resolve('dclint/package.json'));
    const schema = JSON.parse(readFileSync(join(dir, 'schemas', 'compose.schema.json'), 'utf8')) as Record<string, unknown>;
    // Its $schema spells draft-07's URI in a form Ajv does not register; draft-07 is Ajv's default anyway.
    delete schema.$schema;
    composeValidator = new Ajv({ allErrors: true, strict: false }).compile(schema);
  }
  if (composeValidator(compose)) return [];
  return (composeValidator.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`);
}

/**
 * Compose's variable interpolation for the forms the file uses: `${NAME:-default}` and `${NAME}`,
 * from `env`. Any other form throws, so the check never silently misreads a value.
 */
export function interpolate(value: string, env: Record<string, string> = {}): string {
  return value.replace(/\$\{([^}]*)\}/g, (_, expr: string) => {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/.exec(expr);
    if (!m) throw new Error(`unsupported interpolation \${${expr}}`);
    const set = env[m[1]!];
    return set !== undefined && set !== '' ? set : (m[2] ?? '');
  });
}

/** `kubectl kustomize <dir>`, parsed. Offline: kustomize renders without a cluster. kubectl: see kubectlGate in tools.ts. */
export function kustomize(dir: string, kubectl = 'kubectl'): K8sObject[] {
  const res = spawnSync(kubectl, ['kustomize', fromRoot(dir)], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  if (res.status !== 0) throw new Error(`${kubectl} kustomize ${dir} failed: ${res.error?.message ?? res.stderr}`);
  return parseYamlDocuments(res.stdout, `kustomize ${dir}`).map((o) => ({ ...(o as Omit<K8sObject, 'source'>), source: `kustomize ${dir}` }));
}

/**
 * The environment a container would see: envFrom ConfigMaps and Secrets (by name, from `objects`),
 * then its own env (fieldRef values become a placeholder pod name). Missing references throw.
 */
export function containerEnv(container: { name: string; envFrom?: any[]; env?: any[] }, objects: K8sObject[]): Record<string, string> {
  const env: Record<string, string> = {};
  const find = (kind: string, name: string) => {
    const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
    if (!found) throw new Error(`container ${container.name} reads ${kind} ${name}, which does not exist`);
    return found;
  };
  for (const from of container.envFrom ?? []) {
    if (from.configMapRef) Object.assign(env, find('ConfigMap', from.configMapRef.name).data);
    if (from.secretRef) {
      const secret = find('Secret', from.secretRef.name);
      Object.assign(env, secret.stringData, Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()])));
    }
  }
  for (const e of container.env ?? []) env[e.name] = e.value ?? (e.valueFrom?.fieldRef ? 'pod-name' : '');
  return env;
}
