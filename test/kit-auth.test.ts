/**
 * The token machinery on its own clock: what a verified token costs afterwards (nothing but a
 * lookup, until it expires), key rotation, and how often a busy caller signs.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CallAuthenticator, loadPublicKeys, TokenMinter, TokenVerifier } from '../kit/auth.js';
import { DomainError } from '../kit/domain-error.js';

const pair = () => generateKeyPairSync('ed25519');

describe('TokenVerifier', () => {
  it('checks a signature once: the same token then answers synchronously until it expires', async () => {
    let now = Date.parse('2026-12-06T10:00:00Z');
    const bff = pair();
    const minter = new TokenMinter('bff', bff.privateKey, () => now);
    const verifier = new TokenVerifier('ledger', new Map([['bff', [bff.publicKey]]]), () => now);
    const token = minter.user({ userId: '42', role: 'viewer', name: 'Ann' }, ['ledger'], 60);
    const first = verifier.verify(token);
    expect(first).toBeInstanceOf(Promise);
    expect(await first).toMatchObject({ kind: 'user', caller: { userId: '42', role: 'viewer', name: 'Ann', token } });
    expect(verifier.verify(token)).toMatchObject({ kind: 'user' });
    now += 66_000; // past exp and the 5 s tolerance
    expect(() => verifier.verify(token)).toThrow(DomainError);
    // Forgotten once expired: a second try checks the token afresh and is refused the same way.
    await expect(verifier.verify(token)).rejects.toMatchObject({ metadata: { problem: 'expired' } });
  });

  it('accepts every published key of an issuer (rotation), and nothing signed by another', async () => {
    const [oldKey, newKey, stranger] = [pair(), pair(), pair()];
    const dir = mkdtempSync(join(tmpdir(), 'lm-keys-'));
    try {
      writeFileSync(join(dir, 'gift.pem'), oldKey.publicKey.export({ type: 'spki', format: 'pem' }));
      writeFileSync(join(dir, 'gift.2026-12.pem'), newKey.publicKey.export({ type: 'spki', format: 'pem' }));
      const keys = loadPublicKeys(dir);
      expect(keys.get('gift')).toHaveLength(2);
      const verifier = new TokenVerifier('ledger', keys);
      for (const key of [oldKey, newKey]) {
        await expect(Promise.resolve(verifier.verify(new TokenMinter('gift', key.privateKey).service('ledger')))).resolves.toEqual({ kind: 'service', issuer: 'gift', service: 'gift' });
      }
      await expect(Promise.resolve().then(() => verifier.verify(new TokenMinter('gift', stranger.privateKey).service('ledger')))).rejects.toMatchObject({
        kind: 'unauthenticated',
        metadata: { problem: 'bad_signature' },
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the file when a key file is not a key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lm-keys-'));
    try {
      writeFileSync(join(dir, 'bff.pem'), 'REPLACE_ME');
      expect(() => loadPublicKeys(dir)).toThrow(`${join(dir, 'bff.pem')} is not a PEM key`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('TokenMinter', () => {
  it('reuses a token for two thirds of its life, then signs a new one', () => {
    let now = 1_000_000;
    const minter = new TokenMinter('chat', pair().privateKey, () => now);
    const first = minter.service('gift', 300);
    now += 199_000;
    expect(minter.service('gift', 300)).toBe(first);
    now += 2_000;
    expect(minter.service('gift', 300)).not.toBe(first);
    expect(minter.service('ledger', 300)).not.toBe(minter.service('gift', 300));
  });
});

describe('CallAuthenticator', () => {
  const gift = pair();
  const bff = pair();
  const verifier = new TokenVerifier('ledger', new Map([['gift', [gift.publicKey]], ['bff', [bff.publicKey]]]));
  const md = (token: string) => ({ get: (k: string) => (k === 'authorization' ? [`Bearer ${token}`] : []) });
  const auth = new CallAuthenticator(verifier, { CreateTransfers: { services: ['gift'], users: false } });

  it('a service acts as an internal admin only on the RPCs that name it, and is anonymous elsewhere', async () => {
    const token = new TokenMinter('gift', gift.privateKey).service('ledger');
    expect(await auth.authenticate(md(token), 'CreateTransfers')).toMatchObject({ role: 'admin', service: 'gift', userId: '0' });
    expect(await auth.authenticate(md(token), 'GetBalances')).toBeUndefined();
  });

  it("refuses a user's token, even an admin's, on an RPC closed to users; never reads a bare claim", async () => {
    const token = new TokenMinter('bff', bff.privateKey).user({ userId: '9', role: 'admin', name: '' }, ['ledger']);
    await expect(Promise.resolve().then(() => auth.authenticate(md(token), 'CreateTransfers'))).rejects.toMatchObject({ reason: 'CALLER_NOT_ALLOWED' });
    expect(auth.authenticate({ get: (k: string) => (k === 'lm-role' ? ['admin'] : k === 'lm-user-id' ? ['1'] : []) }, 'CreateTransfers')).toBeUndefined();
    expect(() => auth.authenticate({ get: (k: string) => (k === 'authorization' ? ['Basic dXNlcg=='] : []) }, 'GetBalances')).toThrow(/Bearer/);
  });
});
