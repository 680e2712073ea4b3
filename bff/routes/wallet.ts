/**
 * The payment provider's top-up callback. Not a user call: the provider signs the raw body with a
 * shared secret (HMAC-SHA256 over `<timestamp>.<body>`), and the Ledger credits the coins once per
 * payment reference however often the provider retries.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { Router, type Request } from 'express';
import { z } from 'zod';
import { TopUpRequest } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { LEDGER_CONTRACT } from '../../kit/contract-rules.js';
import { callFor, type BffContext } from '../context.js';
import { HttpError } from '../errors.js';
import type { Body, topupCreditedResponse } from '../responses.js';
import { int64Id, parseInput } from '../validate.js';

export const SIGNATURE_HEADER = 'X-Signature';
export const TIMESTAMP_HEADER = 'X-Signature-Timestamp';
/** A captured callback replayed later than this is refused even with a valid signature. */
const MAX_SKEW_S = 300;

export const topupBody = z.strictObject({
  paymentReference: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, { error: 'must be 1-64 letters, digits or _ . : -' }),
  userId: int64Id,
  amountMinor: z.string().regex(/^[1-9][0-9]{0,17}$/, { error: 'must be a positive integer in minor units, as a string' }),
  provider: z.string().max(LEDGER_CONTRACT.providerLength).default(''),
});

/** The signature a provider sends for `body` at `timestampS`: `sha256=<hex>`. */
export function signTopup(secret: string, timestampS: number, body: Buffer | string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestampS}.`).update(body).digest('hex')}`;
}

/** The raw bytes of a JSON body, kept by the body parser: the signature covers bytes, not a re-serialization. */
function rawBodyOf(req: Request): Buffer | undefined {
  return (req as Request & { rawBody?: Buffer }).rawBody;
}

function unauthenticated(message: string): HttpError {
  return new HttpError(401, { error: { code: 'UNAUTHENTICATED', message } });
}

function verifySignature(req: Request, secret: string): void {
  const raw = rawBodyOf(req);
  const header = req.get(SIGNATURE_HEADER);
  const ts = Number(req.get(TIMESTAMP_HEADER));
  if (!header) throw unauthenticated(`${SIGNATURE_HEADER} header is required`);
  if (!Number.isInteger(ts)) throw unauthenticated(`${TIMESTAMP_HEADER} header must be Unix seconds`);
  if (Math.abs(Date.now() / 1000 - ts) > MAX_SKEW_S) throw unauthenticated(`${TIMESTAMP_HEADER} is more than ${MAX_SKEW_S} s away from now`);
  if (!raw) throw HttpError.badRequest('body', 'a JSON body is required');
  const expected = Buffer.from(signTopup(secret, ts, raw));
  const got = Buffer.from(header);
  if (got.length !== expected.length || !timingSafeEqual(got, expected)) throw unauthenticated('signature does not match the body');
}

export function walletRoutes(ctx: BffContext): Router {
  const r = Router();
  r.post('/v1/wallet/topups', async (req, res) => {
    verifySignature(req, ctx.settings.TOPUP_SECRET);
    const body = parseInput(topupBody, req.body, 'body');
    const out = await ctx.upstreams.ledger.call(
      'topUp',
      TopUpRequest.fromPartial({ ownerId: body.userId, amountMinor: body.amountMinor, paymentReference: body.paymentReference, provider: body.provider }),
      // No user: the call carries the BFF's own service token, the one caller TopUp accepts besides operators.
      callFor(ctx, undefined),
    );
    res.status(out.replayed ? 200 : 201).json({ transferId: out.transfer?.transferId ?? null, balanceMinor: out.balance?.amountMinor ?? null, replayed: out.replayed } satisfies Body<typeof topupCreditedResponse>);
  });
  return r;
}
