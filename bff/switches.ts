/**
 * Degradation switches: operators turn non-critical screen sections off during a big event
 * (seeds 000 and 004), and every BFF replica follows within milliseconds because each one watches
 * the same NATS KV bucket. A section is also off, without anyone touching a switch, while the
 * breaker of the upstream it needs is open (see upstreams.ts).
 */
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '../kit/nats.js';
import type { Logger } from '../kit/logger.js';
import { ensureKv, jetStreamError, jetStreamProblem, untilDone } from '../kit/streams.js';

/** Every switchable section, with what turning it off costs the user. */
export const SWITCHES = {
  'room.ranking': 'room entry: the top-3 gifters of the live ranking',
  'room.messages': 'room entry: the last 20 chat messages',
  'me.recent': 'me: the rooms I watched recently',
  'me.recommended': 'me: recommended live rooms (the hot list)',
  'stream.chat': 'room stream: chat messages (gifts and notices still flow)',
} as const;

export type SwitchName = keyof typeof SWITCHES;

export function isSwitchName(name: string): name is SwitchName {
  return Object.hasOwn(SWITCHES, name);
}

/** What a switch holds in the KV bucket. */
export interface SwitchState {
  off: boolean;
  reason: string;
  /** User id of the admin who set it. */
  by: string;
  at: string;
}

/** Bucket names allow letters, digits, `-` and `_`; the NATS prefix keeps test files apart. */
const switchesBucket = (natsPrefix: string) => `${natsPrefix ? `${natsPrefix}_` : ''}bff_switches`.replace(/[^A-Za-z0-9_-]/g, '_');

export class Switches {
  private readonly states = new Map<SwitchName, SwitchState & { revision: number }>();
  private stopWatch: (() => void) | undefined;
  private kv: KV | undefined;
  private closed = false;
  private readonly abort = new AbortController();

  private constructor(private readonly log: Logger | undefined) {}

  /**
   * Opens (or creates) the bucket and follows it; resolves once the current values are loaded, so
   * a replica never serves a section an operator has switched off. If the bucket is offline (its
   * NATS node down), the replica starts anyway with every section on and keeps trying in the
   * background: switches only ever turn sections off, so serving them all beats not starting.
   */
  static async open(nc: NatsConnection, natsPrefix: string, log?: Logger): Promise<Switches> {
    const switches = new Switches(log);
    const connect = async () => {
      const kv = await ensureKv(nc, switchesBucket(natsPrefix), { history: 5 });
      if (switches.closed) return;
      await switches.follow(kv);
      switches.kv = kv;
    };
    try {
      await connect();
    } catch (err) {
      log?.warn({ err: jetStreamError(err) }, `switches: ${jetStreamProblem(err)}; serving every section until the bucket answers`);
      if (log) void untilDone('switches', connect, log, { signal: switches.abort.signal, afterTries: 1 }).catch(() => undefined);
    }
    return switches;
  }

  /** False while the bucket has not been reached: switches can then be neither read from nor written to NATS. */
  get available(): boolean {
    return this.kv !== undefined;
  }

  /**
   * Watch first, then read every known switch: whichever of the two delivers a value first, the
   * revision check keeps the newest, so no change can fall between loading and following.
   */
  private async follow(kv: KV): Promise<void> {
    const watch = await kv.watch();
    this.stopWatch = () => watch.stop();
    void (async () => {
      try {
        for await (const e of watch) {
          if (!isSwitchName(e.key)) continue;
          if (e.operation === 'PUT') this.apply(e.key, e.json<SwitchState>(), e.revision);
          else this.apply(e.key, undefined, e.revision);
        }
      } catch (err) {
        this.log?.warn({ err }, 'switches: watch ended');
      }
    })();
    try {
      for (const name of Object.keys(SWITCHES) as SwitchName[]) {
        const e = await kv.get(name);
        if (e && e.operation === 'PUT') this.apply(name, e.json<SwitchState>(), e.revision);
      }
    } catch (err) {
      // The next try starts its own watch.
      watch.stop();
      throw err;
    }
  }

  private apply(name: SwitchName, state: SwitchState | undefined, revision: number): void {
    const held = this.states.get(name);
    if (held && held.revision >= revision) return;
    if (!state) {
      this.states.delete(name);
      return;
    }
    this.states.set(name, { ...state, revision });
    if ((held?.off ?? false) !== state.off) this.log?.info({ switch: name, off: state.off, by: state.by, reason: state.reason }, `switch ${name} ${state.off ? 'off' : 'on'}`);
  }

  /** True when an operator switched the section off. Read on every request: a Map lookup. */
  isOff(name: SwitchName): boolean {
    return this.states.get(name)?.off ?? false;
  }

  state(name: SwitchName): SwitchState | undefined {
    const held = this.states.get(name);
    return held && { off: held.off, reason: held.reason, by: held.by, at: held.at };
  }

  /** Writes a switch; other replicas apply it when their watch delivers it, this one at once. */
  async set(name: SwitchName, off: boolean, by: string, reason: string): Promise<SwitchState> {
    if (!this.kv) throw new Error('switches: the bucket has not been reached yet');
    const state: SwitchState = { off, by, reason, at: new Date().toISOString() };
    const revision = await this.kv.put(name, JSON.stringify(state));
    this.apply(name, state, revision);
    return state;
  }

  close(): void {
    this.closed = true;
    this.abort.abort();
    this.stopWatch?.();
  }
}
