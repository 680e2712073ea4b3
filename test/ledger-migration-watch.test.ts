import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { natsServers } from '../kit/nats.js';
import { isolate } from '../scripts/isolation.js';
import { startLedger, type LedgerServer } from './support/ledger.js';

/**
 * Each Ledger replica looks for unfinished bucket migrations every 2 s. Listing the `migration.*`
 * keys made JetStream create an ephemeral consumer per look (about 300 lingering per two
 * replicas); the replica now follows those keys with one watch for its lifetime, so the map's
 * bucket holds a fixed number of consumers however long the replicas run.
 */
const iso = isolate('ledgermigwatch');
let a: LedgerServer | undefined;
let b: LedgerServer | undefined;
let nc: NatsConnection | undefined;

afterAll(async () => {
  await b?.close();
  await a?.close();
  await nc?.close();
  await iso.cleanup();
});

describe('the Ledger migration resumer', () => {
  it('holds a fixed number of consumers on the shard map bucket, not one more per scan', async () => {
    a = await startLedger(iso);
    b = await startLedger(iso);
    nc = await connect({ servers: natsServers(iso.urls.natsUrl) });
    const jsm = await jetstreamManager(nc);
    const stream = `KV_${a.parts.mapStore.name}`;
    const consumers = async () => (await jsm.streams.info(stream)).state.consumer_count;
    await sleep(1000);
    const before = await consumers();
    // Two replicas, each with one watch on the map key and one on the migration records.
    expect(before).toBeLessThanOrEqual(4);
    // Four scans per replica later (every 2 s), still the same consumers.
    await sleep(7000);
    expect(await consumers()).toBe(before);
  }, 60_000);
});
