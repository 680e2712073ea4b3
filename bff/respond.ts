/**
 * Writing precompressed JSON: the encoding the client prefers among br and gzip, a weak ETag
 * shared by all encodings (same content), and 304 when the client already holds it.
 */
import type { Request, Response } from 'express';
import type { CacheStatus, EncodedBody } from './microcache.js';

export const CACHE_STATUS_HEADER = 'X-Cache-Status';

/** True when If-None-Match names this ETag (weak comparison, as RFC 9110 asks for If-None-Match). */
export function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  const opaque = etag.replace(/^W\//, '');
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === opaque);
}

export function sendEncoded(req: Request, res: Response, body: EncodedBody, opts: { cacheStatus?: CacheStatus; maxAgeS?: number } = {}): void {
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('ETag', body.etag);
  res.setHeader('Vary', 'Accept-Encoding');
  if (opts.cacheStatus) res.setHeader(CACHE_STATUS_HEADER, opts.cacheStatus);
  // Public screens may be kept briefly by the client or a CDN; the ETag makes revalidation cheap.
  res.setHeader('Cache-Control', opts.maxAgeS !== undefined ? `public, max-age=${opts.maxAgeS}` : 'private, no-cache');
  if (etagMatches(req.headers['if-none-match'], body.etag)) {
    res.status(304).end();
    return;
  }
  const encoding = req.acceptsEncodings('br', 'gzip', 'identity');
  let bytes = body.raw;
  if (encoding === 'br' && body.br.length < body.raw.length) bytes = body.br;
  else if ((encoding === 'br' || encoding === 'gzip') && req.acceptsEncodings('gzip') && body.gzip.length < body.raw.length) bytes = body.gzip;
  if (bytes !== body.raw) res.setHeader('Content-Encoding', bytes === body.br ? 'br' : 'gzip');
  res.setHeader('Content-Length', String(bytes.length));
  res.end(req.method === 'HEAD' ? undefined : bytes);
}
