/**
 * Writing precompressed JSON: the encoding the client prefers among br and gzip, a weak ETag
 * shared by all encodings (same content), and 304 when the client already holds it. Works on
 * plain node:http objects, so the cache-hit fast path (fast-path.ts) and Express routes share it.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { CacheStatus, EncodedBody } from './microcache.js';

const CACHE_STATUS_HEADER = 'X-Cache-Status';

/** True when If-None-Match names this ETag (weak comparison, as RFC 9110 asks for If-None-Match). */
function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  const opaque = etag.replace(/^W\//, '');
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === opaque);
}

/**
 * The content coding to answer with, from Accept-Encoding: the highest q among br and gzip (br
 * on a tie, being smaller), else identity. A tiny parser rather than a negotiation library,
 * because it runs on every cache hit.
 */
export function pickEncoding(header: string | undefined): 'br' | 'gzip' | 'identity' {
  if (!header) return 'identity';
  let br = 0;
  let gzip = 0;
  let star = -1;
  for (const part of header.split(',')) {
    const [token = '', ...params] = part.trim().toLowerCase().split(';');
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const q = qParam ? Number(qParam.slice(2)) : 1;
    if (!Number.isFinite(q)) continue;
    if (token === 'br') br = q;
    else if (token === 'gzip' || token === 'x-gzip') gzip = q;
    else if (token === '*') star = q;
  }
  if (star > 0) {
    if (!/\bbr\b/i.test(header)) br = star;
    if (!/gzip/i.test(header)) gzip = star;
  }
  if (br > 0 && br >= gzip) return 'br';
  if (gzip > 0) return 'gzip';
  return 'identity';
}

export interface EncodedResponseOptions {
  cacheStatus?: CacheStatus;
  /** Public screens may be kept briefly by the client or a CDN; absent: private, revalidate. */
  maxAgeS?: number;
  /** Headers every response carries anyway (the security headers, on the fast path). */
  baseHeaders?: OutgoingHttpHeaders;
}

export function writeEncoded(req: IncomingMessage, res: ServerResponse, body: EncodedBody, opts: EncodedResponseOptions = {}): void {
  const headers: OutgoingHttpHeaders = {
    ...opts.baseHeaders,
    'Content-Type': 'application/json; charset=utf-8',
    ETag: body.etag,
    Vary: 'Accept-Encoding',
    'Cache-Control': opts.maxAgeS !== undefined ? `public, max-age=${opts.maxAgeS}` : 'private, no-cache',
  };
  if (opts.cacheStatus) headers[CACHE_STATUS_HEADER] = opts.cacheStatus;
  const inm = req.headers['if-none-match'];
  if (etagMatches(inm, body.etag)) {
    res.writeHead(304, headers).end();
    return;
  }
  const encoding = pickEncoding(req.headers['accept-encoding']);
  let bytes = body.raw;
  if (encoding === 'br' && body.br.length < body.raw.length) bytes = body.br;
  else if (encoding === 'gzip' && body.gzip.length < body.raw.length) bytes = body.gzip;
  if (bytes !== body.raw) headers['Content-Encoding'] = bytes === body.br ? 'br' : 'gzip';
  headers['Content-Length'] = bytes.length;
  res.writeHead(200, headers).end(req.method === 'HEAD' ? undefined : bytes);
}
