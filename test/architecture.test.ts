import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * The layering the tree promises, checked on the import graph so that it cannot erode one
 * convenient import at a time. It reads only import/export specifiers (no type checking), so it
 * runs in a moment and names the file and the import that break a rule.
 *
 * Layers inside a service (Room's shape): main.ts wires, service.ts connects gRPC to the domain,
 * handlers.ts and mapping.ts translate between protobuf and domain, errors.ts names the domain's
 * errors, store/ implements the ports the domain declares, client.ts is the face other services
 * use. Every other file directly in services/<svc>/ is a domain module: it may use the kit but not
 * storage, protobuf or grpc-js, so its rules can be read and tested without either.
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SCANNED = ['services', 'kit', 'lb', 'bff'];
/** Files in services/<svc>/ that are not domain modules: entry points (main.ts, the operator's cli.ts), wiring, translation, the public face, errors. */
const NOT_DOMAIN = new Set(['main.ts', 'cli.ts', 'service.ts', 'handlers.ts', 'mapping.ts', 'client.ts', 'errors.ts']);

interface Violation {
  /** The importing file, from the repository root (posix separators). */
  file: string;
  /** The imported file from the root, or the package name. */
  imports: string;
  rule: string;
}

/**
 * Violations that other work in flight removes (issue 16). Each names who removes it. The test
 * fails when one is gone but still listed, so the list can only shrink: delete the entry in the
 * change that fixes the import.
 */
const ALLOWED: ReadonlyArray<{ file: string; imports: string; owner: string }> = [];

function tsFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const path = posix.join(dir, e.name);
    if (e.isDirectory()) return tsFiles(path);
    return e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Relative specifiers resolve to a root-relative .ts path; packages stay as written. */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(join(ROOT, file), 'utf8'), true, true);
  return info.importedFiles.map(({ fileName }) => {
    if (!fileName.startsWith('.')) return fileName;
    return posix.normalize(posix.join(posix.dirname(file), fileName)).replace(/\.js$/, '.ts');
  });
}

/** `services/<svc>/...` → svc; anything else → undefined. */
const serviceOf = (path: string) => (path.startsWith('services/') ? path.split('/')[1] : undefined);

function check(file: string, imported: string): string | undefined {
  const top = file.split('/')[0];
  const importedTop = imported.split('/')[0];
  const svc = serviceOf(file);
  const parts = file.split('/');
  const grpc = imported === '@grpc/grpc-js' || imported.startsWith('@grpc/grpc-js/');

  if (top === 'lb' && (importedTop === 'kit' || importedTop === 'services' || importedTop === 'bff')) return 'lb/ is below the kit: it imports nothing of the mesh';
  if (top === 'kit' && (importedTop === 'services' || importedTop === 'bff')) return 'the kit is shared by the services and the BFF: it imports neither';
  if (top === 'kit' && imported.startsWith('gen/ts/livemesh/') && !imported.startsWith('gen/ts/livemesh/common/')) return "the kit holds no service's contract: a service's events and clients live in its client.ts";

  const target = serviceOf(imported);
  if (target && target !== svc && imported !== `services/${target}/client.ts`) return `another service is reached only through its client.ts (services/${target}/client.ts)`;

  if (svc && parts.length === 3) {
    const name = parts[2] ?? '';
    const own = `services/${svc}/`;
    if (name === 'errors.ts') {
      if (imported !== 'kit/domain-error.ts' && importedTop !== 'gen') return 'errors.ts uses only kit/domain-error and its generated reason enum';
      return undefined;
    }
    if (NOT_DOMAIN.has(name)) return undefined;
    if (imported.startsWith(`${own}store/`)) return 'a domain module declares the port it needs; store/ implements it and service.ts injects it';
    if (grpc) return 'a domain module does not know the transport (grpc-js)';
    if (importedTop === 'gen') return 'a domain module does not build or read protobuf; mapping.ts translates';
    if (imported.startsWith(own) && NOT_DOMAIN.has(imported.slice(own.length)) && imported !== `${own}errors.ts`) return 'a domain module does not import the layers above it';
  }
  return undefined;
}

function violations(): Violation[] {
  return SCANNED.flatMap(tsFiles).flatMap((file) =>
    importsOf(file).flatMap((imported) => {
      const rule = check(file, imported);
      return rule ? [{ file, imports: imported, rule }] : [];
    }),
  );
}

const key = (v: { file: string; imports: string }) => `${v.file} -> ${v.imports}`;

describe('architecture: the import graph', () => {
  const found = violations();
  const allowed = new Set(ALLOWED.map(key));

  it('has no arrow from a lower layer to a higher one, beyond the listed ones in flight', () => {
    const unexpected = found.filter((v) => !allowed.has(key(v))).map((v) => `${key(v)}: ${v.rule}`);
    expect(unexpected).toEqual([]);
  });

  it('lists no violation that is already gone (the allow-list only shrinks)', () => {
    const present = new Set(found.map(key));
    expect(ALLOWED.filter((a) => !present.has(key(a))).map(key)).toEqual([]);
  });

  it('sees the tree it checks', () => {
    // A path mistake would make every rule pass vacuously.
    expect(SCANNED.flatMap(tsFiles).length).toBeGreaterThan(100);
    expect(relative(ROOT, join(ROOT, 'services')).split(sep)).toEqual(['services']);
  });
});
