/**
 * Request bytes for any message type, straight from its descriptor: no per-RPC code.
 *
 * The encoder writes the wire format itself (protobuf-es's BinaryWriter) instead of building a
 * message object and serializing it, because the interesting inputs are the ones a well-behaved
 * serializer would never produce: out-of-range enums, a field repeated where it is singular, a
 * string field holding invalid UTF-8, unknown fields, the wrong wire type for a field number.
 *
 * "sane" fills fields the way a real client would, drawing ids from the seeded data by field name
 * (room_id from the live rooms, gift_ids from the catalog…), so the success paths are exercised;
 * "wild" picks edge values for every type.
 */
import { ScalarType, type DescEnum, type DescField, type DescMessage } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import type { Rng } from '../random.js';
import { allIds, day, INT64_MAX, INT64_MIN, key, title, UINT64_MAX, wildBigInt, wildDay, wildDouble, wildInt32, wildString, word, type Known } from './values.js';

export type Style = 'sane' | 'wild';

const MAX_DEPTH = 6;
const utf8 = new TextEncoder();

/** Keys reused on purpose, so replays and IDEMPOTENCY_KEY_REUSED paths run too. */
const REUSED_KEYS = ['fuzz-key-0001', 'fuzz-key-0002', 'fuzz-key-0003'];

/**
 * Bytes of long strings and blobs one message may hold. Without a budget a wild repeated field of
 * wild strings reaches tens of megabytes, and the run measures the network instead of the servers;
 * gRPC's own 4 MB limit is tried on purpose by the raw-bytes cases.
 */
const BYTE_BUDGET = 256 * 1024;
let budget = BYTE_BUDGET;

export function encodeMessage(desc: DescMessage, rng: Rng, known: Known, style: Style): Uint8Array {
  budget = BYTE_BUDGET;
  const w = new BinaryWriter();
  writeMessage(w, desc, rng, known, style, 0);
  return w.finish();
}

/** `make()` unless the message's budget is spent, then `small()`. */
function withinBudget<T extends { length: number }>(make: () => T, small: () => T): T {
  const v = budget > 0 ? make() : small();
  budget -= v.length;
  return v;
}

function writeMessage(w: BinaryWriter, desc: DescMessage, rng: Rng, known: Known, style: Style, depth: number): void {
  const chosenOneof = new Map<string, string>();
  for (const oneof of desc.oneofs) {
    if (style === 'sane' || rng.chance(0.7)) chosenOneof.set(oneof.name, rng.pick(oneof.fields).name);
  }
  for (const field of desc.fields) {
    if (field.oneof) {
      const chosen = chosenOneof.get(field.oneof.name);
      // A wild message may set several members of one oneof: decoders must keep the last.
      if (chosen !== field.name && (style === 'sane' || !rng.chance(0.2))) continue;
    } else if (!rng.chance(style === 'sane' ? 0.85 : 0.55)) {
      continue;
    }
    if (depth >= MAX_DEPTH && field.message !== undefined) continue;
    writeField(w, field, rng, known, style, depth);
    if (style === 'wild' && field.fieldKind !== 'list' && field.fieldKind !== 'map' && rng.chance(0.05)) writeField(w, field, rng, known, style, depth);
  }
  if (style === 'wild' && rng.chance(0.1)) writeUnknownField(w, rng);
  if (style === 'wild' && desc.fields.length > 0 && rng.chance(0.05)) {
    // A known field number with the wrong wire type.
    const f = rng.pick(desc.fields);
    w.tag(f.number, rng.pick([WireType.Varint, WireType.Bit64, WireType.LengthDelimited, WireType.Bit32]));
    writeRawValue(w, rng);
  }
}

function writeUnknownField(w: BinaryWriter, rng: Rng): void {
  w.tag(rng.pick([99, 1000, 536870911, rng.int(16, 2047)]), rng.pick([WireType.Varint, WireType.Bit64, WireType.LengthDelimited, WireType.Bit32]));
  writeRawValue(w, rng);
}

/** Whatever follows a tag is written for the type the last tag() call declared; here it is random. */
function writeRawValue(w: BinaryWriter, rng: Rng): void {
  rng.weighted<() => void>([
    [1, () => void w.uint64(BigInt(rng.int(0, 1_000_000)))],
    [1, () => void w.fixed32(rng.int(0, 0xffffffff))],
    [1, () => void w.fixed64(BigInt(rng.int(0, 0xffffffff)))],
    [1, () => void w.bytes(rng.bytes(rng.length(64)))],
  ])();
}

function writeField(w: BinaryWriter, field: DescField, rng: Rng, known: Known, style: Style, depth: number): void {
  switch (field.fieldKind) {
    case 'scalar':
      writeScalar(w, field.number, field.scalar, field.name, rng, known, style);
      return;
    case 'enum':
      w.tag(field.number, WireType.Varint).int32(enumValue(field.enum, rng, style));
      return;
    case 'message':
      writeNested(w, field.number, field.message, field.name, rng, known, style, depth);
      return;
    case 'list': {
      const n = listLength(rng, style, field.name);
      if (field.listKind === 'message') {
        for (let i = 0; i < n; i++) writeNested(w, field.number, field.message, field.name, rng, known, style, depth);
        return;
      }
      const packed = field.listKind === 'enum' || (field.scalar !== ScalarType.STRING && field.scalar !== ScalarType.BYTES);
      if (packed && rng.chance(0.7)) {
        // Packed (proto3's default); the unpacked form below must be accepted too.
        w.tag(field.number, WireType.LengthDelimited).fork();
        for (let i = 0; i < n; i++) {
          if (field.listKind === 'enum') w.int32(enumValue(field.enum, rng, style));
          else writeScalarValue(w, field.scalar, singular(field.name), rng, known, style);
        }
        w.join();
        return;
      }
      for (let i = 0; i < n; i++) {
        if (field.listKind === 'enum') w.tag(field.number, WireType.Varint).int32(enumValue(field.enum, rng, style));
        else writeScalar(w, field.number, field.scalar, singular(field.name), rng, known, style);
      }
      return;
    }
    case 'map': {
      const n = listLength(rng, style, field.name);
      for (let i = 0; i < n; i++) {
        w.tag(field.number, WireType.LengthDelimited).fork();
        if (rng.chance(0.95)) writeScalar(w, 1, field.mapKey, `${field.name}_key`, rng, known, style);
        if (rng.chance(0.95)) {
          if (field.mapKind === 'scalar') writeScalar(w, 2, field.scalar, field.name, rng, known, style);
          else if (field.mapKind === 'enum') w.tag(2, WireType.Varint).int32(enumValue(field.enum, rng, style));
          else writeNested(w, 2, field.message, field.name, rng, known, style, depth);
        }
        w.join();
      }
      return;
    }
  }
}

function writeNested(w: BinaryWriter, number: number, desc: DescMessage, name: string, rng: Rng, known: Known, style: Style, depth: number): void {
  w.tag(number, WireType.LengthDelimited).fork();
  if (desc.typeName === 'google.protobuf.FieldMask') writeFieldMask(w, rng, known, style);
  else if (desc.typeName === 'google.protobuf.Timestamp' || desc.typeName === 'google.protobuf.Duration') writeSecondsNanos(w, desc.typeName, name, rng, style);
  else writeMessage(w, desc, rng, known, style, depth + 1);
  w.join();
}

function writeFieldMask(w: BinaryWriter, rng: Rng, known: Known, style: Style): void {
  const n = style === 'sane' ? rng.int(0, 4) : listLength(rng, style, 'paths');
  for (let i = 0; i < n; i++) {
    const path = style === 'sane' || rng.chance(0.5) ? rng.pick(known.fieldNames) : withinBudget(() => wildString(rng), () => rng.pick(['', '*', 'a.b']));
    w.tag(1, WireType.LengthDelimited).bytes(utf8.encode(path));
  }
}

function writeSecondsNanos(w: BinaryWriter, typeName: string, name: string, rng: Rng, style: Style): void {
  const now = BigInt(Math.floor(Date.now() / 1000));
  const seconds =
    style === 'sane'
      ? typeName.endsWith('Duration')
        ? BigInt(rng.int(0, 3600))
        : now - BigInt(rng.int(0, 7 * 86400))
      : rng.pick([0n, -1n, 253402300800n, -62135596801n, INT64_MAX, INT64_MIN, now, wildBigInt(rng)]);
  if (seconds !== 0n || rng.chance(0.5)) w.tag(1, WireType.Varint).int64(seconds);
  const nanos = style === 'sane' ? rng.int(0, 999_999_999) : wildInt32(rng);
  if (nanos !== 0 && rng.chance(0.5)) w.tag(2, WireType.Varint).int32(nanos);
  void name;
}

function enumValue(e: DescEnum, rng: Rng, style: Style): number {
  const values = e.values.map((v) => v.number);
  if (style === 'sane') return rng.pick(values.filter((v) => v !== 0).length > 0 ? values.filter((v) => v !== 0) : values);
  return rng.weighted<number>([
    [5, rng.pick(values)],
    [2, rng.pick([-1, values.length, 99, 2147483647, -2147483648])],
    [1, wildInt32(rng)],
  ]);
}

function listLength(rng: Rng, style: Style, name: string): number {
  if (style === 'sane') return name.endsWith('ids') || name.endsWith('paths') ? rng.int(1, 5) : rng.int(0, 3);
  // Long lists spend the message's budget too (a few dozen bytes an element), so nesting stays bounded.
  if (budget <= 0) return rng.int(0, 2);
  const n = rng.weighted<number>([
    [3, 0],
    [5, rng.int(1, 5)],
    [2, rng.int(6, 300)],
    [1, rng.int(300, 2000)],
  ]);
  budget -= n * 32;
  return n;
}

function singular(name: string): string {
  return name.endsWith('ids') ? name.slice(0, -1) : name;
}

const WIRE_OF: Record<ScalarType, WireType> = {
  [ScalarType.DOUBLE]: WireType.Bit64,
  [ScalarType.FLOAT]: WireType.Bit32,
  [ScalarType.INT64]: WireType.Varint,
  [ScalarType.UINT64]: WireType.Varint,
  [ScalarType.INT32]: WireType.Varint,
  [ScalarType.FIXED64]: WireType.Bit64,
  [ScalarType.FIXED32]: WireType.Bit32,
  [ScalarType.BOOL]: WireType.Varint,
  [ScalarType.STRING]: WireType.LengthDelimited,
  [ScalarType.BYTES]: WireType.LengthDelimited,
  [ScalarType.UINT32]: WireType.Varint,
  [ScalarType.SFIXED32]: WireType.Bit32,
  [ScalarType.SFIXED64]: WireType.Bit64,
  [ScalarType.SINT32]: WireType.Varint,
  [ScalarType.SINT64]: WireType.Varint,
};

function writeScalar(w: BinaryWriter, number: number, type: ScalarType, name: string, rng: Rng, known: Known, style: Style): void {
  w.tag(number, WIRE_OF[type]);
  writeScalarValue(w, type, name, rng, known, style);
}

function writeScalarValue(w: BinaryWriter, type: ScalarType, name: string, rng: Rng, known: Known, style: Style): void {
  switch (type) {
    case ScalarType.STRING:
      if (style === 'wild' && rng.chance(0.05)) {
        // Not UTF-8 at all: a string field holding bytes no decoder should accept silently.
        w.bytes(rng.pick([new Uint8Array([0xff, 0xfe, 0xfd]), new Uint8Array([0xc3]), new Uint8Array([0xed, 0xa0, 0x80]), rng.bytes(rng.length(40))]));
        return;
      }
      w.bytes(utf8.encode(style === 'sane' || rng.chance(0.3) ? saneString(name, rng, known) : withinBudget(() => wildString(rng), () => rng.pick(['', 'x', '0', '\u0000']))));
      return;
    case ScalarType.BYTES:
      w.bytes(withinBudget(() => rng.bytes(rng.length(style === 'sane' ? 32 : 70_000)), () => new Uint8Array()));
      return;
    case ScalarType.BOOL:
      // Any varint is a bool on the wire; 2 or 2^63 must read as true, not break the decoder.
      if (style === 'wild' && rng.chance(0.2)) w.uint64(rng.pick([2n, 255n, UINT64_MAX]));
      else w.bool(rng.chance(0.5));
      return;
    case ScalarType.DOUBLE:
      w.double(style === 'sane' ? rng.next() * 100 : wildDouble(rng));
      return;
    case ScalarType.FLOAT:
      w.float(style === 'sane' ? rng.next() * 100 : rng.pick([0, -0, 1, Number.NaN, Infinity, -Infinity, 3.4e38, 1e-45]));
      return;
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32: {
      const v = style === 'sane' ? saneInt(name, rng) : wildInt32(rng);
      if (type === ScalarType.INT32) w.int32(v);
      else if (type === ScalarType.SINT32) w.sint32(v);
      else w.sfixed32(v);
      return;
    }
    case ScalarType.UINT32:
    case ScalarType.FIXED32: {
      const v = style === 'sane' ? saneInt(name, rng) : rng.pick([0, 1, 0xffffffff, 0x80000000, rng.int(0, 0xffffffff)]);
      if (type === ScalarType.UINT32) w.uint32(v);
      else w.fixed32(v);
      return;
    }
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64: {
      const v = style === 'sane' ? saneInt64(name, rng, known) : wildBigInt(rng, known);
      if (type === ScalarType.INT64) w.int64(v);
      else if (type === ScalarType.SINT64) w.sint64(v);
      else w.sfixed64(v);
      return;
    }
    case ScalarType.UINT64:
    case ScalarType.FIXED64: {
      const v = style === 'sane' ? saneInt64(name, rng, known) : rng.pick([0n, 1n, UINT64_MAX, INT64_MAX + 1n]);
      const u = v < 0n ? -v : v;
      if (type === ScalarType.UINT64) w.uint64(u);
      else w.fixed64(u);
      return;
    }
  }
}

/** Ids by what the field is called: the one place the generator knows livemesh's vocabulary. */
function idPool(name: string, known: Known): string[] {
  const n = name.replace(/_ids?$/, '');
  if (n === 'room') return [...known.liveRoomIds, ...known.liveRoomIds, ...known.idleRoomIds];
  if (n === 'gift') return known.giftIds;
  if (n === 'gift_group') return known.giftGroupIds;
  if (n === 'order') return known.orderIds;
  if (n === 'streamer' || n === 'payee') return known.streamers;
  if (/(owner|user|sender|viewer|payer|target|muted|account)$/.test(n)) return [...known.viewers, ...known.streamers];
  return allIds(known);
}

function saneInt64(name: string, rng: Rng, known: Known): bigint {
  if (name.endsWith('_id') || name.endsWith('_ids') || name === 'id') {
    if (rng.chance(0.9)) return BigInt(rng.pick(idPool(name, known)));
    return BigInt(rng.int(1, 100_000));
  }
  if (name.includes('version')) return rng.chance(0.8) ? 0n : BigInt(rng.int(1, 5));
  if (name.includes('amount') || name.includes('price')) return BigInt(rng.pick([1, 10, 100, 500, 1000]));
  if (name.includes('seq') || name.includes('after')) return BigInt(rng.int(0, 50));
  return BigInt(rng.int(0, 100));
}

function saneInt(name: string, rng: Rng): number {
  if (name.includes('count')) return rng.int(1, 10);
  if (name.includes('size') || name.includes('limit')) return rng.int(0, 50);
  if (name.includes('bucket')) return rng.int(0, 255);
  if (name.includes('shard')) return rng.int(0, 1);
  if (name.includes('level')) return rng.int(0, 5);
  if (name.includes('_ms') || name.includes('seconds')) return rng.int(0, 5000);
  return rng.int(0, 10);
}

function saneString(name: string, rng: Rng, known: Known): string {
  if (/(idempotency_key|request_id|payment_reference|client_message_id)$/.test(name)) return rng.chance(0.15) ? rng.pick(REUSED_KEYS) : `fz-${key(rng, 8, 30)}`;
  if (name === 'order_id' || name.endsWith('order_ids')) return rng.pick(known.orderIds);
  if (name === 'transfer_id' || name.endsWith('transfer_ids')) return rng.chance(0.7) ? rng.pick(known.transferIds) : `fz:${key(rng, 4, 20)}`;
  if (name.endsWith('day') || name.endsWith('days')) return rng.chance(0.9) ? day(rng) : wildDay(rng);
  if (name.includes('token') || name.includes('cursor')) return rng.chance(0.8) ? '' : key(rng, 4, 40);
  if (name === 'category') return rng.pick(['music', 'games', 'talk', '']);
  if (name === 'text' || name === 'title' || name === 'notice' || name === 'reason') return title(rng);
  if (name.endsWith('name')) return word(rng);
  if (name.endsWith('_key')) return rng.chance(0.5) ? '' : `${word(rng)}-${word(rng)}`;
  if (name.endsWith('_id')) return rng.chance(0.8) ? rng.pick(allIds(known)) : key(rng, 1, 20);
  return rng.chance(0.5) ? word(rng) : '';
}

/** Byte-level damage to an encoded message: the inputs a broken or hostile client sends. */
export function mutateBytes(bytes: Uint8Array, rng: Rng): Uint8Array {
  let out = Array.from(bytes);
  const rounds = rng.int(1, 4);
  for (let r = 0; r < rounds; r++) {
    const at = out.length === 0 ? 0 : rng.int(0, out.length - 1);
    rng.weighted<() => void>([
      [3, () => out.length > 0 && (out[at] = (out[at] ?? 0) ^ (1 << rng.int(0, 7)))],
      [2, () => out.length > 0 && (out[at] = rng.pick([0x00, 0xff, 0x7f, 0x80, 0x0a, 0x12, 0x08]))],
      [2, () => out.splice(at, rng.int(1, 8))],
      [2, () => out.splice(at, 0, ...rng.bytes(rng.int(1, 8)))],
      [1, () => out.splice(at, 0, ...out.slice(at, at + rng.int(1, 32)))],
      [1, () => (out = out.slice(0, at))],
      // A length prefix claiming far more bytes than follow.
      [1, () => out.splice(at, 0, 0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f)],
    ])();
  }
  return Uint8Array.from(out);
}
