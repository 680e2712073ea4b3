/**
 * FieldMask paths, spelled either way. The server matches the .proto field name (`cover_key`). A
 * JSON caller writes the lowerCamelCase JSON name (`coverKey`), which protojson turns into
 * `cover_key` on the wire, but a client filling `paths` by hand (a ts-proto or proto-loader
 * object, a JSON-to-gRPC bridge that copies strings) sends it as written; both spellings are
 * accepted, so no caller has to know which one its library expects. Room and Chat both use it.
 */

/** `coverKey` -> `cover_key`; a path already in .proto form is returned unchanged. */
export function protoMaskPath(path: string): string {
  return path.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** `cover_key` -> `coverKey`, the name JSON callers write. */
function jsonMaskPath(path: string): string {
  return path.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** What `path` (either spelling) names in a table keyed by .proto names; undefined when nothing. */
export function maskPathTarget<T>(table: Readonly<Record<string, T>>, path: string): T | undefined {
  const name = protoMaskPath(path);
  return Object.hasOwn(table, name) ? table[name] : undefined;
}

/** Paths for an error message, in both spellings: "title, cover_key (JSON: coverKey)". */
export function describeMaskPaths(paths: Iterable<string>): string {
  return [...paths].map((p) => (jsonMaskPath(p) === p ? p : `${p} (JSON: ${jsonMaskPath(p)})`)).join(', ');
}
