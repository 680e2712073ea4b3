/**
 * `GET /v1/rooms/:id/stream`: room events over one WebSocket per viewer.
 *
 * - The replica subscribes to `chat.room.<id>` when its first viewer of the room connects and
 *   unsubscribes when the last one leaves, so NATS sends each replica only the rooms it serves.
 * - `?format=json` (default) or `?format=protobuf`: JSON text frames, or binary frames holding a
 *   `livemesh.chat.v1.ListRecentMessagesResponse` (a list of RoomEvents). Control messages
 *   (hello, errors) are always JSON text frames.
 * - `?after=<seq>` resumes after a reconnect: the last messages after that seq (at most
 *   STREAM_RESUME_MAX) come first, in a `replay` frame, then the live ones; `?resume=1` replays
 *   the last messages without a seq. Clients drop duplicates by seq at the seam.
 * - A client whose unsent data passes STREAM_MAX_BUFFER_BYTES is closed with 4008: one stuck
 *   phone must not hold megabytes of every room's events in this process.
 * - Pings every STREAM_HEARTBEAT_MS; a client that missed the previous pong is terminated.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Subscription } from '@nats-io/nats-core';
import { WebSocket, WebSocketServer } from 'ws';
import { ListRecentMessagesRequest } from '../../gen/ts/livemesh/chat/v1/chat.js';
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
import { Frame, kindOf, PreparedEvent, RoomFeed, type FeedLimits, type Format } from './room-feed.js';
import { noteEventContext, traceRoomFrame } from '../../kit/tracing-frames.js';

export const CLOSE_SLOW_CONSUMER = 4008;
const CLOSE_GOING_AWAY = 1001;

export interface StreamSettings extends FeedLimits {
  /** Deadline of the upstream calls a connection makes (room check, replay). */
  callBudgetMs: number;
  maxBufferBytes: number;
  heartbeatMs: number;
  resumeMax: number;
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
}

const PATH = /^\/v1\/rooms\/([^/]+)\/stream$/;

class Viewer {
  alive = true;
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

interface Room {
  feed: RoomFeed;
  viewers: Set<Viewer>;
  sub: Subscription;
  /** Resolves once the NATS server has the subscription: a viewer's hello promises nothing published after it is missed. */
  subscribed: Promise<void>;
}

export class StreamGateway {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 4096, perMessageDeflate: false });
  private readonly rooms = new Map<string, Room>();
  private readonly ticker: NodeJS.Timeout;
  private readonly heartbeat: NodeJS.Timeout;
  private closing = false;
  readonly stats: StreamStats = { connections: 0, subscriptions: 0, framesSent: 0, eventsSent: 0, slowDisconnects: 0, heartbeatDisconnects: 0, chatDropped: 0 };

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
    if (after !== null && after !== '0' && !isPositiveInt64(after)) return writeRawError(socket, HttpError.badRequest('after', 'must be a sequence number'));
    const resume = after !== null || url.searchParams.get('resume') === '1';
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
    this.wss.handleUpgrade(req, socket, head, (ws) => this.connected(ws, socket, roomId, format, caller, resume ? (after ?? '0') : undefined));
  }

  /** A cached existence check (single flight, stale-if-error), so a crowd connecting at once costs Room one call. */
  private async roomExists(roomId: string): Promise<void> {
    const room = this.deps.upstreams.room;
    await this.deps.cache.get(`exists:${roomId}`, async () => {
      const got = await room.call('getRoom', GetRoomRequest.fromPartial({ roomId, readMask: ['room_id'] }), { deadline: Date.now() + this.settings.callBudgetMs });
      return { id: got.room?.roomId };
    });
  }

  private connected(ws: WebSocket, socket: Duplex, roomId: string, format: Format, caller: Caller | undefined, resumeAfter: string | undefined): void {
    const viewer = new Viewer(ws, socket, roomId, format, caller);
    this.stats.connections++;
    ws.on('pong', () => (viewer.alive = true));
    ws.on('error', () => ws.terminate());
    ws.on('close', () => this.leave(viewer));
    // Clients send nothing but control frames; a message is ignored rather than an error.
    ws.on('message', () => undefined);
    const subscribed = this.join(viewer);
    this.presence(viewer, 'enter');
    void subscribed.then(
      () => {
        if (ws.readyState !== WebSocket.OPEN) return;
        ws.send(JSON.stringify({ type: 'hello', roomId, format, eventsPerS: this.settings.eventsPerS, heartbeatMs: this.settings.heartbeatMs }));
        if (resumeAfter === undefined) this.release(viewer);
        else void this.replay(viewer, resumeAfter);
      },
      (err: unknown) => {
        this.deps.log?.warn({ err, roomId }, 'room subscription failed');
        ws.close(1011, 'room events unavailable; reconnect');
      },
    );
  }

  private async replay(viewer: Viewer, after: string): Promise<void> {
    try {
      const out = await this.deps.upstreams.chat.call('listRecentMessages', ListRecentMessagesRequest.fromPartial({ roomId: viewer.roomId, limit: this.settings.resumeMax, afterSeq: after }), {
        caller: viewer.caller,
        deadline: Date.now() + this.settings.callBudgetMs,
      });
      this.send(viewer, new Frame('replay', out.events.map((e) => PreparedEvent.of(e))));
    } catch (err) {
      const body: ErrorBody = { error: { code: 'UNAVAILABLE', message: 'recent messages are unavailable; live events follow', upstream: 'chat' } };
      if (viewer.ws.readyState === WebSocket.OPEN) viewer.ws.send(JSON.stringify({ type: 'replay_failed', ...body }));
      this.deps.log?.debug({ err, roomId: viewer.roomId }, 'stream resume failed');
    }
    this.release(viewer);
  }

  /** Ends the hold: frames that arrived during the replay go out after it, in order. */
  private release(viewer: Viewer): void {
    const held = viewer.held ?? [];
    viewer.held = undefined;
    for (const frame of held) this.send(viewer, frame);
  }

  private join(viewer: Viewer): Promise<void> {
    let room = this.rooms.get(viewer.roomId);
    if (!room) {
      const feed = new RoomFeed(this.settings);
      const sub = this.deps.nats.subscribe(subject(this.deps.natsPrefix, `chat.room.${viewer.roomId}`), {
        callback: (err, msg) => {
          if (err) return;
          try {
            const event = PreparedEvent.decode(msg.data);
            noteEventContext(event, msg.headers);
            // The `stream.chat` switch sheds chat at the gateway during a big event; gifts and notices still flow.
            if (kindOf(event.event) === 'chat' && this.deps.switches?.isOff('stream.chat')) {
              this.stats.chatDropped++;
              return;
            }
            feed.push(event);
          } catch (e) {
            this.deps.log?.warn({ err: e, subject: msg.subject }, 'undecodable room event ignored');
          }
        },
      });
      room = { feed, viewers: new Set(), sub, subscribed: this.deps.nats.flush() };
      this.rooms.set(viewer.roomId, room);
      this.stats.subscriptions = this.rooms.size;
    }
    room.viewers.add(viewer);
    return room.subscribed;
  }

  private leave(viewer: Viewer): void {
    const room = this.rooms.get(viewer.roomId);
    if (!room?.viewers.delete(viewer)) return;
    this.stats.connections--;
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
    for (const room of this.rooms.values()) {
      const before = room.feed.droppedChats;
      const frame = room.feed.tick();
      this.stats.chatDropped += room.feed.droppedChats - before;
      if (!frame) continue;
      traceRoomFrame(frame, room.viewers, () => room.viewers.forEach((viewer) => this.send(viewer, frame)));
    }
  }

  private send(viewer: Viewer, frame: Frame): void {
    if (viewer.held) {
      viewer.held.push(frame);
      return;
    }
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
