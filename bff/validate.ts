/**
 * Input checks with zod, before anything goes upstream: a client mistake is a 400 naming the
 * field here, instead of a round trip to a service (or, worse, a 500 from a type the code did not
 * expect). 64-bit ids and amounts stay strings end to end.
 */
import { z } from 'zod';
import { isPositiveInt64 } from '../kit/identity.js';
import { HttpError } from './errors.js';

/** A positive int64 as a decimal string; JSON numbers are accepted only when they are safe integers. */
export const int64Id = z.union([z.string(), z.number().int().positive().max(Number.MAX_SAFE_INTEGER)]).transform((v, ctx) => {
  const s = String(v);
  if (!isPositiveInt64(s)) {
    ctx.addIssue({ code: 'custom', message: 'must be a positive 64-bit integer (as a string)' });
    return z.NEVER;
  }
  return s;
});

const INT64_MAX = 9223372036854775807n;

/** A non-negative int64 amount in minor units, as a decimal string (19 digits can pass int64, hence the range check). */
export const minorAmount = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,18})$/, { error: 'must be a non-negative integer in minor units, as a string' })
  // zod runs every check even after the regex failed, so the BigInt only sees digits.
  .refine((v) => !/^[0-9]+$/.test(v) || BigInt(v) <= INT64_MAX, { error: 'must be at most 9223372036854775807' });

/** Where an input came from, used as the prefix of field names only for headers. */
export type InputPlace = 'body' | 'query' | 'path' | 'header';

/** Parses input or throws a 400 whose `field` is the first bad field and `fields` lists all of them. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, place: InputPlace): z.infer<S> {
  const result = schema.safeParse(value ?? (place === 'body' ? undefined : {}));
  if (result.success) return result.data;
  const fields = result.error.issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    return { field: path || place, description: describe(issue, place) };
  });
  const first = fields[0] ?? { field: place, description: 'invalid' };
  const err = HttpError.badRequest(first.field, first.description);
  if (fields.length > 1) err.body.error.fields = fields;
  throw err;
}

function describe(issue: z.core.$ZodIssue, place: InputPlace): string {
  if (issue.code === 'invalid_type' && issue.input === undefined) return place === 'body' && issue.path.length === 0 ? 'a JSON object body is required' : 'is required';
  if (issue.code === 'unrecognized_keys') return `unknown field(s) ${issue.keys.join(', ')}`;
  return issue.message;
}
