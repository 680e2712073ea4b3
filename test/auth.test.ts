/**
 * Nobody is trusted for what they type: the whole mesh (every service and the BFF as processes)
 * with mutual TLS on, probed as an attacker on the network would, and used as the three kinds of
 * users do (a phone through the BFF, an internal caller with a token, an engineer with buf curl).
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, credentials, Metadata, status as Code, type ChannelCredentials, type ChannelOptions, type ServiceDefinition, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenVerifier as AppTokens } from '../bff/auth.js';
import { DEV_JWT_SECRET, DEV_TOPUP_SECRET } from '../bff/config.js';
import { signTopup } from '../bff/routes/wallet.js';
import { ChatServiceService } from '../gen/ts/livemesh/chat/v1/chat.js';
import { Asset } from '../gen/ts/livemesh/common/v1/common.js';
import * as giftPb from '../gen/ts/livemesh/gift/v1/gift.js';
import * as ledgerPb from '../gen/ts/livemesh/ledger/v1/ledger.js';
import { RankingServiceService } from '../gen/ts/livemesh/ranking/v1/ranking.js';
import * as roomPb from '../gen/ts/livemesh/room/v1/room.js';
import { signJwt } from '../kit/auth.js';
import { DEV_TLS_DIR } from '../kit/config.js';
import { errorInfoOf } from '../kit/grpc-errors.js';
import { fromRoot } from '../kit/paths.js';
import { bearer, devServiceToken, devSigningKey, devUserToken, operatorChannel, operatorServiceToken } from '../scripts/credentials.js';
import { isolate } from '../scripts/isolation.js';
import { startMesh, type Mesh } from '../scripts/mesh.js';
import { until } from './support/gift.js';
import { runCommand as run } from './support/reflection.js';
import { as, failure, unaryApi } from './support/room.js';

const iso = isolate('auth');
let mesh: Mesh;
const operatorTls = (service: string) => operatorChannel(service, join(DEV_TLS_DIR, 'operator'));
const clients: Client[] = [];
function client<C extends Client>(Ctor: new (address: string, creds: ChannelCredentials, options: ChannelOptions) => C, service: string): C {
  const tls = operatorTls(service);
  const c = new Ctor(mesh.addresses(service as 'room')[0]!, tls.credentials, tls.options);
  clients.push(c);
  return c;
}
const rooms = () => unaryApi(client(roomPb.RoomServiceClient, 'room'), roomPb);
const gifts = () => unaryApi(client(giftPb.GiftServiceClient, 'gift'), giftPb);
const ledger = () => unaryApi(client(ledgerPb.LedgerServiceClient, 'ledger'), ledgerPb);

beforeAll(async () => {
  mesh = await startMesh({ tls: true, replicas: 1, env: { ...iso.env, LOG_LEVEL: 'warn', RATE_LIMIT_IP_PER_S: '0', RATE_LIMIT_USER_PER_S: '0' } });
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await mesh?.stop();
  await iso.cleanup();
});

/** One raw unary call: an empty request (every field at its default) with the given metadata. */
function rawCall(address: string, path: string, md: Metadata, creds?: ChannelCredentials): Promise<ServiceError | null> {
  // '/livemesh.room.v1.RoomService/GetRoom': the certificate names the service, `room`.
  const tls = operatorTls(path.split('.')[1]!);
  const c = new Client(address, creds ?? tls.credentials, tls.options);
  return new Promise<ServiceError | null>((resolve) =>
    c.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), md, { deadline: Date.now() + 5000 }, (err) => resolve(err)),
  ).finally(() => c.close());
}

const SERVICES: Array<[string, ServiceDefinition]> = [
  ['room', roomPb.RoomServiceService],
  ['gift', giftPb.GiftServiceService],
  ['ledger', ledgerPb.LedgerServiceService],
  ['chat', ChatServiceService],
  ['ranking', RankingServiceService],
];

/** Every unary RPC that acts for someone: with no proven caller it must answer UNAUTHENTICATED. */
const NEEDS_IDENTITY = new Set([
  'CreateRoom', 'UpdateRoom', 'StartLive', 'StopLive', 'AssignGiftGroup', 'EnterRoom', 'LeaveRoom',
  'UpsertGift', 'UpsertGiftGroup', 'SendGift', 'GetOrder', 'ListOrders', 'ListStuckOrders', 'RetryOrder', 'AckOrderEffect', 'AckOrderEffects',
  'TopUp', 'Transfer', 'CreateTransfers', 'GetBalances', 'GetTransfer', 'VoidTransfer', 'ListTransfers', 'GetDailyIncome', 'Reconcile', 'CheckInvariants', 'GetShardMap', 'MigrateBucket', 'GetMigration',
  'SendMessage', 'SendLikes', 'SetRoomPolicy', 'MuteUser',
  'RebuildRanking',
]);
// ListRoomsByStreamer, ListConsumption and GetUserRank read "mine" when no id is given; an empty
// request fails their other fields first (INVALID_ARGUMENT), with or without the claimed identity.

describe('identity is proved, never claimed', () => {
  it('bare lm-user-id / lm-role metadata is ignored: every RPC that needs a caller answers UNAUTHENTICATED', async () => {
    const claimed = new Metadata();
    claimed.set('lm-user-id', '1');
    claimed.set('lm-role', 'admin');
    const unauthenticated: string[] = [];
    const answered: Record<string, string> = {};
    for (const [service, definition] of SERVICES) {
      const address = mesh.addresses(service as 'room')[0]!;
      for (const method of Object.values(definition)) {
        if (method.requestStream || method.responseStream) continue;
        const name = method.path.split('/')[2]!;
        const [withClaim, withNothing] = await Promise.all([rawCall(address, method.path, claimed), rawCall(address, method.path, new Metadata())]);
        // The claim changes nothing: the same answer as no metadata at all.
        expect(withClaim?.code, name).toBe(withNothing?.code);
        answered[name] = Code[withClaim?.code ?? 0]!;
        if (withClaim?.code === Code.UNAUTHENTICATED) unauthenticated.push(name);
      }
    }
    expect(new Set(unauthenticated), JSON.stringify(answered)).toEqual(NEEDS_IDENTITY);
  }, 60_000);

  it('a viewer token cannot call admin RPCs: PERMISSION_DENIED with a reason', async () => {
    const viewer = as('71', 'viewer');
    const topUp = await failure(ledger().topUp({ ownerId: '71', amountMinor: '100', paymentReference: 'self-mint-1', provider: 'x' }, viewer));
    expect(topUp).toMatchObject({ code: 'PERMISSION_DENIED', reason: 'CALLER_NOT_ALLOWED' });
    expect(await failure(ledger().checkInvariants({}, viewer))).toMatchObject({ code: 'PERMISSION_DENIED', reason: 'CALLER_NOT_ALLOWED' });
    expect(await failure(gifts().upsertGift({ gift: { name: 'free money', priceMinor: '1', iconKey: 'i', effectKey: 'e' } }, viewer))).toMatchObject({ code: 'PERMISSION_DENIED', reason: 'PERMISSION_DENIED' });
    expect(await failure(gifts().retryOrder({ orderId: '1' }, viewer))).toMatchObject({ code: 'PERMISSION_DENIED', reason: 'PERMISSION_DENIED' });
    expect(await failure(rooms().assignGiftGroup({ roomId: '1', giftGroupId: '1' }, viewer))).toMatchObject({ code: 'PERMISSION_DENIED', reason: 'WRITE_NOT_ALLOWED' });
    // An admin of the app (a user token the BFF signed) still may not mint money: only the payment callback and operators.
    const appAdmin = bearer(signedAsBff({ kind: 'user', sub: '72', role: 'admin', name: '', aud: 'ledger' }));
    expect(await failure(ledger().topUp({ ownerId: '72', amountMinor: '100', paymentReference: 'self-mint-2', provider: 'x' }, appAdmin))).toMatchObject({ code: 'PERMISSION_DENIED', reason: 'CALLER_NOT_ALLOWED' });
  });

  it('an expired, wrongly signed, wrong-audience or impersonating token is refused, saying why', async () => {
    const now = Math.floor(Date.now() / 1000);
    const user = { kind: 'user', sub: '73', role: 'viewer', name: '' };
    const cases: Array<[string, string]> = [
      ['expired', signedAsBff({ ...user, aud: 'ledger', iat: now - 120, exp: now - 60 })],
      ['bad_signature', signJwt({ ...user, aud: 'ledger', iat: now, exp: now + 60 }, 'bff', generateKeyPairSync('ed25519').privateKey)],
      ['wrong_audience', signedAsBff({ ...user, aud: 'room', iat: now, exp: now + 60 })],
      ['lifetime_too_long', signedAsBff({ ...user, aud: 'ledger', iat: now, exp: now + 7 * 86_400 })],
      ['issuer_not_allowed', signJwt({ kind: 'service', sub: 'gift', aud: 'ledger', iat: now, exp: now + 60 }, 'operator', devSigningKey('operator'))],
      ['issuer_not_allowed', signJwt({ kind: 'user', sub: '1', role: 'admin', name: '', aud: 'ledger', iat: now, exp: now + 60 }, 'chat', devSigningKey('chat'))],
      ['unknown_issuer', signJwt({ ...user, aud: 'ledger', iat: now, exp: now + 60 }, 'mallory', generateKeyPairSync('ed25519').privateKey)],
    ];
    for (const [problem, token] of cases) {
      const err = (await rawCall(mesh.addresses('ledger')[0]!, '/livemesh.ledger.v1.LedgerService/GetBalances', bearer(token)))!;
      expect(err?.code, problem).toBe(Code.UNAUTHENTICATED);
      expect(errorInfoOf(err.metadata), problem).toMatchObject({ reason: 'UNAUTHENTICATED', metadata: { problem } });
    }
    // A forged payload under a real signature.
    const [h, p, s] = devUserToken('73', 'viewer').split('.') as [string, string, string];
    const forged = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
    const err = (await rawCall(mesh.addresses('ledger')[0]!, '/livemesh.ledger.v1.LedgerService/GetBalances', bearer(`${h}.${Buffer.from(JSON.stringify({ ...forged, role: 'admin' })).toString('base64url')}.${s}`)))!;
    expect(errorInfoOf(err.metadata)?.metadata).toEqual({ problem: 'bad_signature' });
  });

  it("a user's token cannot move another user's money; a service token counts only where its service is named", async () => {
    const operator = as('1', 'admin');
    await ledger().topUp({ ownerId: '7401', amountMinor: '1000', paymentReference: 'auth-victim', provider: 'test' }, operator);
    const theft = await failure(
      ledger().transfer({ transferId: 'auth-theft-1', kind: ledgerPb.TransferKind.TRANSFER_KIND_GIFT, payer: { ownerId: '7401', asset: 1 }, payee: { ownerId: '7402', asset: 2 }, amountMinor: '1000', reference: 'gift' }, as('7402', 'viewer')),
    );
    expect(theft.code, theft.message).toBe('PERMISSION_DENIED');
    // Chat's own token is good for what Chat does (none of it on the Ledger's money RPCs).
    const asChat = bearer(devServiceToken('chat'));
    expect((await failure(ledger().createTransfers({ transfers: [] }, asChat))).code).toBe('UNAUTHENTICATED');
    // Another team's token, minted by an operator, authenticates that team and nothing more.
    expect((await failure(ledger().topUp({ ownerId: '7402', amountMinor: '5', paymentReference: 'team', provider: 'x' }, bearer(operatorServiceToken('search-team'))))).code).toBe('UNAUTHENTICATED');
    const balance = await ledger().getBalances({ ownerId: '7401', assets: [] }, as('7401', 'viewer'));
    expect(balance.balances.find((b) => b.asset === Asset.ASSET_COIN)?.amountMinor).toBe('1000');
  });
});

describe('mutual TLS, one switch', () => {
  it('refuses a client without a certificate, and without TLS at all', async () => {
    const address = mesh.addresses('room')[0]!;
    const ca = operatorTls('room').credentials;
    const plaintext = await rawCall(address, '/livemesh.room.v1.RoomService/GetRoom', new Metadata(), credentials.createInsecure());
    expect(plaintext?.code).toBe(Code.UNAVAILABLE);
    const noCert = await rawCall(address, '/livemesh.room.v1.RoomService/GetRoom', new Metadata(), credentials.createSsl(readFileSync(join(DEV_TLS_DIR, 'operator', 'ca.crt'))));
    expect(noCert?.code).toBe(Code.UNAVAILABLE);
    const withCert = await rawCall(address, '/livemesh.room.v1.RoomService/GetRoom', new Metadata(), ca);
    expect(withCert?.code).toBe(Code.INVALID_ARGUMENT);
  });

  it('buf curl reaches health and reflection over TLS with the operator certificate and an admin token', async () => {
    const address = mesh.addresses('ledger')[0]!;
    const dir = join(DEV_TLS_DIR, 'operator');
    const tls = ['--cacert', join(dir, 'ca.crt'), '--cert', join(dir, 'tls.crt'), '--key', join(dir, 'tls.key'), '--protocol', 'grpc'];
    const health = await run(fromRoot('node_modules', '.bin', 'buf'), ['curl', ...tls, '--data', '{}', `https://${address}/grpc.health.v1.Health/Check`]);
    expect(health.code, health.stderr).toBe(0);
    expect(JSON.parse(health.stdout)).toEqual({ status: 'SERVING' });
    const listed = await run(fromRoot('node_modules', '.bin', 'buf'), ['curl', ...tls, '--list-methods', `https://${address}`]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain('livemesh.ledger.v1.LedgerService/TopUp');
    const token = devUserToken('1', 'admin');
    const shardMap = await run(fromRoot('node_modules', '.bin', 'buf'), ['curl', ...tls, '-H', `authorization: Bearer ${token}`, '--data', '{}', `https://${address}/livemesh.ledger.v1.LedgerService/GetShardMap`]);
    expect(shardMap.code, shardMap.stderr).toBe(0);
    expect(JSON.parse(shardMap.stdout)).toHaveProperty('shardMap.version');
  });

  it('a phone sends a gift through the BFF: top-up callback, send, and the order reaches DONE with every effect, all over mTLS', async () => {
    const streamer = as('7501', 'streamer');
    const room = (await rooms().createRoom({ title: 'secure stage', requestId: 'auth-room' }, streamer)).room!;
    await rooms().startLive({ roomId: room.roomId }, streamer);
    const admin = as('1', 'admin');
    const rose = (await gifts().upsertGift({ gift: { name: 'rose', priceMinor: '100', iconKey: 'i/rose.png', effectKey: 'rose' } }, admin)).gift!;
    await gifts().upsertGiftGroup({ giftGroup: { name: 'standard', giftIds: [rose.giftId], isDefault: true } }, admin);

    const raw = JSON.stringify({ paymentReference: 'auth-pay-1', userId: '7502', amountMinor: '1000', provider: 'test' });
    const ts = Math.floor(Date.now() / 1000);
    const top = await fetch(`${mesh.bffUrl}/v1/wallet/topups`, { method: 'POST', body: raw, headers: { 'content-type': 'application/json', 'x-signature': signTopup(DEV_TOPUP_SECRET, ts, raw), 'x-signature-timestamp': String(ts) } });
    expect(top.status, await top.clone().text()).toBe(201);

    const appToken = await new AppTokens(DEV_JWT_SECRET).sign({ userId: '7502', role: 'viewer', name: 'Fan' });
    const sent = await until(
      'the gift to be accepted (the BFF caches the room a moment)',
      () => fetch(`${mesh.bffUrl}/v1/rooms/${room.roomId}/gifts`, { method: 'POST', body: JSON.stringify({ giftId: rose.giftId, count: 2 }), headers: { 'content-type': 'application/json', authorization: `Bearer ${appToken}`, 'idempotency-key': 'auth-gift-1' } }),
      (res) => res.status === 201 || res.status === 200,
    );
    const { order } = (await sent.json()) as { order: { id: string } };
    const done = await until('the order to be DONE', () => gifts().getOrder({ orderId: order.id }, admin), (o) => o.order?.state === giftPb.OrderState.ORDER_STATE_DONE, 20_000);
    expect(done.order?.effects.length).toBeGreaterThanOrEqual(4);
    const balances = await ledger().getBalances({ ownerId: '7502', assets: [] }, as('7502', 'viewer'));
    expect(balances.balances.find((b) => b.asset === Asset.ASSET_COIN)?.amountMinor).toBe('800');
  }, 60_000);
});

function signedAsBff(claims: Record<string, unknown>): string {
  const now = Math.floor(Date.now() / 1000);
  return signJwt({ iat: now, exp: now + 60, ...claims }, 'bff', devSigningKey('bff'));
}

