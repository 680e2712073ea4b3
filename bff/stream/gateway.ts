/**
 * `GET /v1/rooms/:id/stream`: room events over one WebSocket per viewer.
 *
 * - The replica subscribes to `chat.room.<id>` when its first viewer of the room connects and
 *   unsubscribes when the last one leaves, so NATS sends each replica only the rooms it serves.
 * - Every event carries its offset in the room's stream (`seq`), one counter per room for every
 *   kind of event, handed out by Chat as it appends the event to the room's history. The
 *   gateway reads the room's position from Chat when it subscribes, releases events strictly in
 *   offset order (events from different Chat replicas may cross on the way), waits a moment for a
 *   missing one and then fetches it from the history, and counts one that is gone as dropped.
 * - `?format=json` (default) or `?format=protobuf`: JSON text frames, or binary frames holding a
 *   `livemesh.chat.v1.ListRecentMessagesResponse` (events, and the dropped count). Control
 *   messages (hello, state, errors) are always JSON text frames.
 * - `?after=<offset>&epoch=<epoch>` recovers after a reconnect (Centrifugo's model): every event
 *   the client missed, of every kind, comes first in a `replay` frame, when the room's history
 *   still covers the gap and the epoch is the same; otherwise the hello says `recovered: false`
 *   and a `state` frame plus a `replay` frame of recent messages give the current state.
 *   `?resume=1` asks for the current state without an offset.
 * - A client whose unsent data passes STREAM_MAX_BUFFER_BYTES is closed with 4008: one stuck
 *   phone must not hold megabytes of every room's events in this process.
 * - Pings every STREAM_HEARTBEAT_MS; a client that missed the previous pong is terminated.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Subscription } from '@nats-io/nats-core';
import { WebSocket, WebSocketServer } from 'ws';
import { GetLikeCountRequest, GetRoomHistoryRequest, ListRecentMessagesRequest, type StreamPosition } from '../../gen/ts/livemesh/chat/v1/chat.js';
import { EnterRoomRequest, GetRoomRequest, LeaveRoomRequest } from '../../gen/ts/livemesh/room/v1/room.js';
import { randomUUID } from 'node:crypto';
import { subject, type NatsConnection } from '../../kit/nats.js';
import type { Logger } from '../../kit/logger.js';
import { isPositiveInt64, type Caller } from '../../kit/identity.js';
import type { TokenVerifier } from '../auth.js';
import { HttpError, isGrpcFailure, fromGrpc, writeRawError, type ErrorBody } from '../errors.js';
import type { MicroCache } from '../microcache.js';
import { clientIp, type RateLimits } from '../rate-limits.js';
import type { Switches } from '../switches.js';
import type { Upstreams } from '../upstreams.js';
import { presentRoom, ROOM_FIELDS } from '../present.js';
import type { Body, streamHello, streamReplayFailed, streamState } from '../responses.js';
import { Frame, PreparedEvent, RoomFeed, type FeedLimits, type Format } from './room-feed.js';
import { noteEventContext, traceRoomFrame } from '../../kit/tracing-frames.js';

export const CLOSE_SLOW_CONSUMER = 4008;
/** The room's history was reset (its epoch changed): reconnect with after= and get the current state. */
export const CLOSE_RESET = 4009;

/** Recent messages in a `recovered: false` state: as many as the room screen shows. */
const STATE_MESSAGES = 20;

/** A reconnect: the last offset and epoch the client saw, or (`resume=1`) none. */
interface Resume {
  after: string | undefined;
  epoch: string;
}
const CLOSE_GOING_AWAY = 1001;

export interface StreamSettings extends FeedLimits {
  /** Deadline of the upstream calls a connection makes (room check, replay). */
  callBudgetMs: number;
  maxBufferBytes: number;
  heartbeatMs: number;
  /** Most events one recovery replays; a longer gap is answered `recovered: false`. */
  resumeMax: number;
  /** How long a gap in the offsets may stay open (an event still on its way) before the history is asked for it. */
  gapWaitMs: number;
  /** Signed-in viewers are re-entered into Room's presence this often (its sessions expire otherwise). */
  presenceRefreshMs: number;
}

export interface StreamStats {
  connections: number;
  /** Rooms this replica is subscribed to. */
  subscriptions: number;
  framesSent: number;
  eventsSent: number;
  slowDisconnects: number;
  heartbeatDisconnects: number;
  chatDropped: number;
  /** Events the history was asked for to close a gap, and events given up for lost. */
  gapFills: number;
  eventsLost: number;
  /** Reconnects with `after=` that got every missed event, and those told `recovered: false`. */
  recovered: number;
  notRecovered: number;
}

const PATH = /^\/v1\/rooms\/([^/]+)\/stream$/;

class Viewer {
  alive = true;
  /** Events at or before this offset are not sent (the viewer's starting point); -Infinity once passed. */
  after = -Infinity;
  /** Room's presence session for this connection; signed-in viewers only (Room counts users). */
  readonly session = randomUUID();
  enteredAt = 0;
  /** Frames that arrived while the replay was being fetched; sent right after it. */
  held: Frame[] | undefined = [];

  constructor(
    readonly ws: WebSocket,
    /** The upgraded socket ws runs on; live frames are written to it pre-framed (see wsFrame). */
    readonly socket: Duplex,
    readonly roomId: string,
    readonly format: Format,
    readonly caller: Caller | undefined,
  ) {}
}

class Room {
  readonly viewers = new Set<Viewer>();
  /** Signed-in viewers by user id: a sender's own line is put back into its frame. */
  readonly byUser = new Map<string, Set<Viewer>>();
  /** The next offset to release; undefined until the position is known (or, without Chat, the first event). */
  next: number | undefined;
  /** The epoch the offsets belong to; '' when Chat could not be asked. */
  epoch = '';
  /** False until the position read settled; events arriving before wait in `pending`. */
  started = false;
  /** Events ahead of `next`, by offset. */
  readonly pending = new Map<number, PreparedEvent>();
  /** When the gap at `next` opened (0: none). */
  gapSince = 0;
  filling = false;
  lastEpochCheck = 0;
  /** A read of the position for a room that started without one (Chat was down); shared by the viewers that wait on it. */
  learning: Promise<void> | undefined;
  lastLearn = 0;
  sub!: Subscription;
  /** Resolves once the NATS server has the subscription and the position is read: nothing published after a hello is missed. */
  ready!: Promise<void>;

  constructor(
    readonly id: string,
    readonly feed: RoomFeed,
  ) {}

  /** The offset of the last event released to the feed: where a viewer joining now starts. */
  get released(): number | undefined {
    return this.next === undefined ? undefined : this.next - 1;
  }
}

export class StreamGateway {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 4096, perMessageDeflate: false });
  private readonly rooms = new Map<string, Room>();
  private readonly ticker: NodeJS.Timeout;
  private readonly heartbeat: NodeJS.Timeout;
  private closing = false;
  readonly stats: StreamStats = {
    connections: 0,
    subscriptions: 0,
    framesSent: 0,
    eventsSent: 0,
    slowDisconnects: 0,
    heartbeatDisconnects: 0,
    chatDropped: 0,
    gapFills: 0,
    eventsLost: 0,
    recovered: 0,
    notRecovered: 0,
  };

  constructor(
    private readonly deps: {
      nats: NatsConnection;
      natsPrefix: string;
      upstreams: Upstreams;
      verifier: TokenVerifier;
      cache: MicroCache;
      limits?: Pick<RateLimits, 'check'>;
      trustProxyHops?: number;
      switches?: Pick<Switches, 'isOff'>;
      log?: Logger;
    },
    private readonly settings: StreamSettings,
  ) {
    this.ticker = setInterval(() => this.tick(), settings.tickMs);
    this.heartbeat = setInterval(() => this.beat(), settings.heartbeatMs);
  }

  /** Takes over upgrades on `server` for the stream path; other upgrade requests get a 404. */
  attach(server: Server): void {
    // ws answers a malformed handshake (wrong method, bad Sec-WebSocket-Key…) with an HTML body
    // unless someone listens here; every livemesh error is the JSON shape.
    this.wss.on('wsClientError', (err: Error, socket: Duplex) => {
      writeRawError(socket, new HttpError(400, { error: { code: 'INVALID_ARGUMENT', message: err.message } }));
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.upgrade(req, socket, head).catch((err: unknown) => {
        this.deps.log?.warn({ err }, 'stream upgrade failed');
        writeRawError(socket, new HttpError(500, { error: { code: 'INTERNAL', message: 'internal error' } }));
      });
    });
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    // Refused before ws sees it: a HEAD answer must not carry the error body ws (or refuse) would write.
    if (req.method !== 'GET') return writeRawError(socket, new HttpError(405, { error: { code: 'METHOD_NOT_ALLOWED', message: 'a room stream is opened with GET' } }), req.method === 'HEAD');
    const url = new URL(req.url ?? '/', 'http://bff');
    const match = PATH.exec(url.pathname);
    if (!match) return writeRawError(socket, new HttpError(404, { error: { code: 'NOT_FOUND', message: `no WebSocket route ${url.pathname}` } }));
    if (this.closing) return writeRawError(socket, new HttpError(503, { error: { code: 'UNAVAILABLE', message: 'this replica is shutting down; reconnect' } }, 1));
    const roomId = decodedOrEmpty(match[1] ?? '');
    if (!isPositiveInt64(roomId)) return writeRawError(socket, HttpError.badRequest('id', 'must be a positive 64-bit integer (as a string)'));
    const format = url.searchParams.get('format') ?? 'json';
    if (format !== 'json' && format !== 'protobuf') return writeRawError(socket, HttpError.badRequest('format', 'must be json or protobuf'));
    const after = url.searchParams.get('after');
    if (after !== null && after !== '0' && !isPositiveInt64(after)) return writeRawError(socket, HttpError.badRequest('after', 'must be an offset (a non-negative integer) from a previous hello or event seq'));
    const epoch = url.searchParams.get('epoch') ?? '';
    if (!/^[A-Za-z0-9]{0,32}$/.test(epoch)) return writeRawError(socket, HttpError.badRequest('epoch', 'must be the epoch a previous hello gave (letters and digits)'));
    const resume: Resume | undefined = after !== null ? { after, epoch } : url.searchParams.get('resume') === '1' ? { after: undefined, epoch } : undefined;
    let caller: Caller | undefined;
    // Browsers cannot set headers on a WebSocket; the token may come in the query instead.
    const token = url.searchParams.get('access_token') ?? /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    try {
      if (token) caller = await this.deps.verifier.verify(token);
      // A connection counts as one request against the same limits as the HTTP routes.
      await this.deps.limits?.check(clientIp(req, this.deps.trustProxyHops ?? 0), caller?.userId);
      await this.roomExists(roomId);
    } catch (err) {
      return writeRawError(socket, err instanceof HttpError ? err : isGrpcFailure(err) ? fromGrpc(err, err.upstream ?? 'room') : new HttpError(500, { error: { code: 'INTERNAL', message: 'internal error' } }));
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.connected(ws, socket, roomId, format, caller, resume));
  }

  /** A cached existence check (single flight, stale-if-error), so a crowd connecting at once costs Room one call. */
  private async roomExists(roomId: string): Promise<void> {
    const room = this.deps.upstreams.room;
    await this.deps.cache.get(`exists:${roomId}`, async () => {
      const got = await room.call('getRoom', GetRoomRequest.fromPartial({ roomId, readMask: ['room_id'] }), { deadline: Date.now() + this.settings.callBudgetMs });
      return { id: got.room?.roomId };
    });
  }

  private connected(ws: WebSocket, socket: Duplex, roomId: string, format: Format, caller: Caller | undefined, resume: Resume | undefined): void {
    const viewer = new Viewer(ws, socket, roomId, format, caller);
    this.stats.connections++;
    ws.on('pong', () => (viewer.alive = true));
    ws.on('error', () => ws.terminate());
    ws.on('close', () => this.leave(viewer));
    // Clients send nothing but control frames; a message is ignored rather than an error.
    ws.on('message', () => undefined);
    const room = this.join(viewer);
    this.presence(viewer, 'enter');
    void room.ready.then(
      async () => {
        if (!room.epoch) await this.learnEpoch(room);
        if (ws.readyState !== WebSocket.OPEN) return;
        if (resume) await this.recover(viewer, room, resume);
        else {
          viewer.after = room.released ?? -Infinity;
          this.hello(viewer, room.epoch, room.released, undefined);
        }
        this.release(viewer);
      },
      (err: unknown) => {
        this.deps.log?.warn({ err, roomId }, 'room subscription failed');
        ws.close(1011, 'room events unavailable; reconnect');
      },
    );
  }

  /**
   * `{"type":"hello",…}`: where the client stands once it has read the frames that follow
   * (`offset`, `epoch`: what to reconnect with), and whether a recovery got every missed event.
   */
  private hello(viewer: Viewer, epoch: string, offset: number | string | undefined, recovered: boolean | undefined): void {
    if (viewer.ws.readyState !== WebSocket.OPEN) return;
    const s = this.settings;
    viewer.ws.send(
      JSON.stringify({
        type: 'hello',
        roomId: viewer.roomId,
        format: viewer.format,
        epoch: epoch || null,
        offset: offset === undefined ? null : String(offset),
        ...(recovered === undefined ? {} : { recovered }),
        sampleAbove: s.sampleAbove,
        eventsPerS: s.eventsPerS,
        heartbeatMs: s.heartbeatMs,
      } satisfies Body<typeof streamHello>),
    );
  }

  /**
   * A reconnect: the missed events from Chat's history when it covers the gap (`recovered:
   * true`, a replay frame), else the current state (`recovered: false`, a state frame and a
   * replay frame of recent messages). Frames that arrived meanwhile follow, minus what the
   * replay or the state already covered.
   */
  private async recover(viewer: Viewer, room: Room, resume: Resume): Promise<void> {
    const chat = this.deps.upstreams.chat;
    const ctx = { caller: viewer.caller, deadline: Date.now() + this.settings.callBudgetMs };
    try {
      if (resume.after !== undefined) {
        const out = await chat.call('getRoomHistory', GetRoomHistoryRequest.fromPartial({ roomId: viewer.roomId, afterOffset: resume.after, epoch: resume.epoch, limit: this.settings.resumeMax }), ctx);
        if (out.recovered && out.position) {
          this.stats.recovered++;
          viewer.after = Number(out.position.offset);
          this.hello(viewer, out.position.epoch, out.position.offset, true);
          this.write(viewer, new Frame('replay', out.events.map((e) => PreparedEvent.of(e))));
          return;
        }
      }
      this.stats.notRecovered++;
      await this.currentState(viewer, ctx);
    } catch (err) {
      viewer.after = room.released ?? -Infinity;
      this.hello(viewer, room.epoch, room.released, false);
      const body: ErrorBody = { error: { code: 'UNAVAILABLE', message: 'missed events are unavailable; live events follow', upstream: 'chat' } };
      if (viewer.ws.readyState === WebSocket.OPEN) viewer.ws.send(JSON.stringify({ type: 'replay_failed', ...body } satisfies Body<typeof streamReplayFailed>));
      this.deps.log?.debug({ err, roomId: viewer.roomId }, 'stream recovery failed');
    }
  }

  /**
   * The current state instead of the missed events: the room (title, notice, live), the like
   * total and the recent messages, as of one stream position. The messages are required (they
   * carry the position); room and likes are null when their call fails.
   */
  private async currentState(viewer: Viewer, ctx: { caller: Caller | undefined; deadline: number }): Promise<void> {
    const { chat, room } = this.deps.upstreams;
    const roomId = viewer.roomId;
    const [recent, likes, info] = await Promise.all([
      chat.call('listRecentMessages', ListRecentMessagesRequest.fromPartial({ roomId, limit: STATE_MESSAGES }), ctx),
      chat.call('getLikeCount', GetLikeCountRequest.fromPartial({ roomId }), ctx).catch(() => undefined),
      room.call('getRoom', GetRoomRequest.fromPartial({ roomId, readMask: ROOM_FIELDS }), ctx).catch(() => undefined),
    ]);
    const position: StreamPosition = recent.position ?? { offset: '0', epoch: '' };
    viewer.after = Number(position.offset);
    this.hello(viewer, position.epoch, position.offset, false);
    if (viewer.ws.readyState !== WebSocket.OPEN) return;
    viewer.ws.send(
      JSON.stringify({
        type: 'state',
        recovered: false,
        epoch: position.epoch || null,
        offset: position.offset,
        room: info?.room ? presentRoom(info.room) : null,
        likes: likes ? { total: likes.likeCount } : null,
      } satisfies Body<typeof streamState>),
    );
    this.write(viewer, new Frame('replay', recent.events.map((e) => PreparedEvent.of(e))));
  }

  /** Ends the hold: frames that arrived while the start point was settled go out after it, in order. */
  private release(viewer: Viewer): void {
    const held = viewer.held ?? [];
    viewer.held = undefined;
    for (const frame of held) this.send(viewer, frame);
  }

  private join(viewer: Viewer): Room {
    let room = this.rooms.get(viewer.roomId);
    if (!room) {
      const r = new Room(viewer.roomId, new RoomFeed(this.settings));
      r.sub = this.deps.nats.subscribe(subject(this.deps.natsPrefix, `chat.room.${viewer.roomId}`), {
        callback: (err, msg) => {
          if (err) return;
          let event: PreparedEvent;
          try {
            event = PreparedEvent.decode(msg.data);
            noteEventContext(event, msg.headers);
          } catch (e) {
            return this.deps.log?.warn({ err: e, subject: msg.subject }, 'undecodable room event ignored');
          }
          this.arrived(r, event);
        },
      });
      r.ready = this.deps.nats.flush().then(() => this.start(r));
      room = r;
      this.rooms.set(viewer.roomId, room);
      this.stats.subscriptions = this.rooms.size;
    }
    room.viewers.add(viewer);
    const user = viewer.caller?.userId;
    if (user) {
      let set = room.byUser.get(user);
      if (!set) room.byUser.set(user, (set = new Set()));
      set.add(viewer);
    }
    return room;
  }

  /**
   * Reads the room's stream position once the subscription is in place: events after it are
   * released from here on. Without Chat the room floats: the first event that arrives sets the
   * start, and `after=` recoveries answer `replay_failed`.
   */
  private async start(room: Room): Promise<void> {
    try {
      const position = await this.position(room.id);
      room.epoch = position.epoch;
      room.next = Number(position.offset) + 1;
    } catch (err) {
      this.deps.log?.debug({ err, roomId: room.id }, 'room stream position unavailable; following from the first event');
    }
    room.started = true;
    const early = [...room.pending.values()];
    room.pending.clear();
    if (room.next === undefined && early.length > 0) room.next = lowest(early.map((e) => e.offset));
    // Events published before the position was read are behind it: not late, just before this start.
    for (const e of early) if (e.offset >= (room.next ?? 0)) this.arrived(room, e);
  }

  /**
   * A room that started while Chat could not be asked has no epoch, so its viewers could not
   * recover after a reconnect. The next viewer to join asks again (at most once a second, one
   * call shared by the viewers joining meanwhile). The offsets it released are Chat's offsets
   * all along, so only the epoch is learnt; the release point stays where the events put it.
   */
  private learnEpoch(room: Room): Promise<void> {
    if (room.learning) return room.learning;
    if (Date.now() - room.lastLearn < 1000) return Promise.resolve();
    room.lastLearn = Date.now();
    room.learning = this.position(room.id).then(
      (position) => {
        room.learning = undefined;
        if (room.epoch || !position.epoch) return;
        room.epoch = position.epoch;
        this.deps.log?.info({ roomId: room.id, epoch: room.epoch }, 'room stream position read after Chat came back');
      },
      () => {
        room.learning = undefined;
      },
    );
    return room.learning;
  }

  private async position(roomId: string): Promise<StreamPosition> {
    const out = await this.deps.upstreams.chat.call('getRoomHistory', GetRoomHistoryRequest.fromPartial({ roomId, afterOffset: '0', limit: 1 }), {
      deadline: Date.now() + this.settings.callBudgetMs,
    });
    return out.position ?? { offset: '0', epoch: '' };
  }

  /** An event from NATS: released at once when it is the next offset, else kept until the gap before it closes. */
  private arrived(room: Room, e: PreparedEvent): void {
    if (!room.started) {
      room.pending.set(e.offset, e);
      return;
    }
    room.next ??= e.offset;
    if (e.offset < room.next) {
      // Seen already, or given up for lost. Also what a reset history looks like (offsets start
      // again at 1): the epoch is checked, at most once a second.
      this.checkEpoch(room);
      return;
    }
    room.pending.set(e.offset, e);
    this.drain(room);
  }

  private drain(room: Room): void {
    let next = room.next as number;
    for (let e = room.pending.get(next); e; e = room.pending.get(next)) {
      room.pending.delete(next);
      next++;
      // The `stream.chat` switch sheds chat at the gateway during a big event; gifts and notices still flow.
      if (e.kind === 'chat' && this.deps.switches?.isOff('stream.chat')) {
        this.stats.chatDropped++;
        room.feed.skip(1);
      } else room.feed.push(e);
    }
    room.next = next;
    room.gapSince = room.pending.size === 0 ? 0 : room.gapSince || Date.now();
  }

  /**
   * A gap that stayed open past gapWaitMs: the missing events are read from the history (they were
   * appended before they were published); what it no longer has is counted as dropped and skipped.
   */
  private async fillGap(room: Room): Promise<void> {
    room.filling = true;
    const from = room.next as number;
    const upTo = lowest(room.pending.keys()) - 1;
    try {
      this.stats.gapFills++;
      const out = await this.deps.upstreams.chat.call(
        'getRoomHistory',
        GetRoomHistoryRequest.fromPartial({ roomId: room.id, afterOffset: String(from - 1), epoch: room.epoch, limit: Math.max(1, Math.min(this.settings.resumeMax, upTo - from + 1)) }),
        { deadline: Date.now() + this.settings.callBudgetMs },
      );
      for (const e of out.events) if (Number(e.seq) >= (room.next ?? 0) && !room.pending.has(Number(e.seq))) room.pending.set(Number(e.seq), PreparedEvent.of(e));
    } catch (err) {
      this.deps.log?.debug({ err, roomId: room.id }, 'gap in the room stream could not be read from the history');
    } finally {
      room.filling = false;
    }
    if (room.next === undefined || room.pending.size === 0) return;
    this.drain(room);
    if (room.pending.size > 0 && !room.pending.has(room.next)) {
      const resume = lowest(room.pending.keys());
      this.stats.eventsLost += resume - room.next;
      room.feed.skip(resume - room.next);
      room.next = resume;
      this.drain(room);
    }
  }

  /** Closes the room's viewers (to recover) when Chat's epoch is no longer the one the room started with. */
  private checkEpoch(room: Room): void {
    if (!room.epoch || Date.now() - room.lastEpochCheck < 1000) return;
    room.lastEpochCheck = Date.now();
    this.position(room.id).then(
      (position) => {
        if (position.epoch === room.epoch || this.rooms.get(room.id) !== room) return;
        this.deps.log?.warn({ roomId: room.id, was: room.epoch, now: position.epoch }, 'room stream history was reset; viewers reconnect');
        for (const viewer of [...room.viewers]) viewer.ws.close(CLOSE_RESET, 'room stream was reset; reconnect');
      },
      () => undefined,
    );
  }

  private leave(viewer: Viewer): void {
    const room = this.rooms.get(viewer.roomId);
    if (!room?.viewers.delete(viewer)) return;
    this.stats.connections--;
    const user = viewer.caller?.userId;
    if (user) {
      const set = room.byUser.get(user);
      set?.delete(viewer);
      if (set?.size === 0) room.byUser.delete(user);
    }
    this.presence(viewer, 'leave');
    if (room.viewers.size === 0) {
      room.sub.unsubscribe();
      this.rooms.delete(viewer.roomId);
      this.stats.subscriptions = this.rooms.size;
    }
  }

  /**
   * Watching a room's stream is what "online" means: a signed-in viewer enters Room's presence
   * when the stream opens, is re-entered while it stays open, and leaves when it closes. Best
   * effort: a failure costs the count one viewer, never the stream.
   */
  private presence(viewer: Viewer, action: 'enter' | 'leave'): void {
    if (!viewer.caller) return;
    const room = this.deps.upstreams.room;
    const ctx = { caller: viewer.caller, deadline: Date.now() + this.settings.callBudgetMs };
    const req = { roomId: viewer.roomId, sessionId: viewer.session };
    if (action === 'enter') viewer.enteredAt = Date.now();
    const call = action === 'enter' ? room.call('enterRoom', EnterRoomRequest.fromPartial(req), ctx) : room.call('leaveRoom', LeaveRoomRequest.fromPartial(req), ctx);
    call.catch((err: unknown) => this.deps.log?.debug({ err, roomId: viewer.roomId, action }, 'stream presence update failed'));
  }

  private tick(): void {
    const now = Date.now();
    for (const room of this.rooms.values()) {
      if (room.gapSince > 0 && !room.filling && now - room.gapSince >= this.settings.gapWaitMs) void this.fillGap(room);
      const before = room.feed.droppedChats;
      const frame = room.feed.tick(room.viewers.size > this.settings.sampleAbove);
      this.stats.chatDropped += room.feed.droppedChats - before;
      if (!frame) continue;
      const own = this.ownFrames(room, frame);
      traceRoomFrame(frame, room.viewers, () => {
        for (const viewer of room.viewers) this.send(viewer, own?.get(viewer) ?? frame);
      });
    }
  }

  /** Frames for the viewers whose own chat lines the sample left out: a sender always sees its message. */
  private ownFrames(room: Room, frame: Frame): Map<Viewer, Frame> | undefined {
    if (frame.leftOut.length === 0 || room.byUser.size === 0) return undefined;
    const bySender = new Map<string, PreparedEvent[]>();
    for (const e of frame.leftOut) {
      const sender = e.event.chat?.senderId;
      if (!sender || !room.byUser.has(sender)) continue;
      const list = bySender.get(sender);
      if (list) list.push(e);
      else bySender.set(sender, [e]);
    }
    if (bySender.size === 0) return undefined;
    const out = new Map<Viewer, Frame>();
    for (const [sender, events] of bySender) {
      const personal = frame.withOwn(events);
      for (const viewer of room.byUser.get(sender) ?? []) out.set(viewer, personal);
    }
    return out;
  }

  /** A frame to one viewer: held while its start point is settled, trimmed to what follows that start. */
  private send(viewer: Viewer, frame: Frame): void {
    if (viewer.held) {
      viewer.held.push(frame);
      return;
    }
    if (viewer.after !== -Infinity) {
      // Everything up to `after` was in the replay or the state; a frame with no events reports drops from before it.
      if (frame.events.length === 0 || frame.last <= viewer.after) return;
      if (frame.first <= viewer.after) frame = frame.after(viewer.after);
      else viewer.after = -Infinity;
    }
    this.write(viewer, frame);
  }

  private write(viewer: Viewer, frame: Frame): void {
    const ws = viewer.ws;
    if (ws.readyState !== WebSocket.OPEN) return;
    // One write of bytes shared by every viewer. ws writes its own frames (pings, close)
    // synchronously and whole, so frames never interleave on the socket; bufferedAmount below
    // reads the socket's queue and so counts these bytes too.
    viewer.socket.write(frame.wire(viewer.format));
    this.stats.framesSent++;
    this.stats.eventsSent += frame.events.length;
    if (ws.bufferedAmount > this.settings.maxBufferBytes) {
      this.stats.slowDisconnects++;
      this.leave(viewer);
      ws.close(CLOSE_SLOW_CONSUMER, 'too slow: events were not read in time');
      // The close frame waits behind the unread data; do not wait for a client that stopped reading.
      setTimeout(() => ws.terminate(), 1000).unref();
    }
  }

  private beat(): void {
    for (const room of this.rooms.values()) {
      for (const viewer of room.viewers) {
        if (!viewer.alive) {
          this.stats.heartbeatDisconnects++;
          viewer.ws.terminate();
          continue;
        }
        viewer.alive = false;
        viewer.ws.ping();
        if (viewer.caller && Date.now() - viewer.enteredAt > this.settings.presenceRefreshMs) this.presence(viewer, 'enter');
      }
    }
  }

  /** Tells every client to reconnect elsewhere (1001) and stops the subscriptions. */
  close(): void {
    this.closing = true;
    clearInterval(this.ticker);
    clearInterval(this.heartbeat);
    for (const room of [...this.rooms.values()]) {
      for (const viewer of room.viewers) viewer.ws.close(CLOSE_GOING_AWAY, 'server restarting; reconnect');
      room.sub.unsubscribe();
    }
    this.rooms.clear();
    for (const ws of this.wss.clients) setTimeout(() => ws.terminate(), 1000).unref();
  }
}

/** A percent-decoded path segment; a malformed escape (`%`, `%ZZ`) is empty, so it is refused as a bad id rather than thrown. */
function decodedOrEmpty(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return '';
  }
}

/** The smallest of some offsets, without spreading a large collection onto the stack. */
function lowest(offsets: Iterable<number>): number {
  let min = Infinity;
  for (const o of offsets) if (o < min) min = o;
  return min;
}
