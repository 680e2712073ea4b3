import { afterAll, describe, expect, it } from 'vitest';
import { OrcaLoadReport } from '../gen/ts/xds/data/orca/v3/orca_load_report.js';
import { ORCA_TRAILER_KEY } from '../kit/load.js';
import { CpuStealer } from '../kit/noisy-neighbour.js';
import { isolate } from '../scripts/isolation.js';
import { startRoom } from './support/room.js';

/** What the server side gives balancers: rates in the ORCA report, and the CPU-factor fault used by bench:lb. */
describe('server signals for balancers', () => {
  const iso = isolate('lbsignals');
  afterAll(() => iso.cleanup());

  it('the ORCA trailer carries rps_fractional, without which weighted_round_robin weighs every endpoint 0', async () => {
    const room = await startRoom(iso, { LOAD_WINDOW_MS: '100' });
    try {
      const orcaOf = () =>
        new Promise<OrcaLoadReport>((resolve, reject) => {
          const c = room.client.getRoom({ roomId: '999999', readMask: undefined }, () => {});
          c.on('status', (s) => {
            const raw = s.metadata.get(ORCA_TRAILER_KEY)[0];
            if (raw instanceof Buffer) resolve(OrcaLoadReport.decode(raw));
            else reject(new Error('no ORCA trailer'));
          });
        });
      // Calls one after another (at least 600 ms of them, as before) until a report counts more
      // than 10 calls per second. The rate is over the last 100 ms window, so the report one
      // particular call gets depends on how a loaded machine scheduled that window (descheduled
      // for most of it, the process counts a single call: 10/s); a report without rps never gets there.
      const reports: OrcaLoadReport[] = [];
      const started = performance.now();
      const busy = () => reports.some((r) => r.rpsFractional > 10);
      while ((performance.now() < started + 600 || !busy()) && performance.now() < started + 20_000) reports.push(await orcaOf());
      expect(Math.max(...reports.map((r) => r.rpsFractional))).toBeGreaterThan(10);
      // Every call here ends NOT_FOUND: a business outcome, so no errors per second, in any report.
      expect(reports.map((r) => r.eps)).toEqual(reports.map(() => 0));
    } finally {
      await room.close();
    }
  });

  it('FAULT_CPU_FACTOR burns (factor − 1) × the CPU the process used since the last tick, never counting its own burn', () => {
    let cpu = 0;
    const burned: number[] = [];
    const stealer = new CpuStealer(3, 10, () => cpu, (ms) => {
      burned.push(ms);
      cpu += ms; // burning is CPU time too
    });
    cpu += 4; // 4 ms of real work
    expect(stealer.tick()).toBe(8);
    expect(stealer.tick()).toBe(0); // the 8 ms burned are not work
    cpu += 1;
    expect(stealer.tick()).toBe(2);
    cpu += 10_000; // a very long task: one tick never blocks for more than 500 ms
    expect(stealer.tick()).toBe(500);
    expect(burned).toEqual([8, 2, 500]);
    expect(() => new CpuStealer(0.5)).toThrow(/>= 1/);
  });
});
