import { RoomNoticeKind } from '../../gen/ts/livemesh/chat/v1/chat.js';
import { roomEvent, type EventBus } from './events.js';
import type { RoomInfo } from './model.js';
import type { RoomDirectory } from './rooms.js';
import type { RedisChatStore } from './store/redis-chat.js';

/**
 * Turns room changes into LIVE_STARTED / LIVE_STOPPED notices. Every replica sees every change;
 * a Redis script records each room's last status by version, so exactly one replica (the first)
 * announces a change, and title edits or repeated events announce nothing.
 */
export class LiveNotices {
  constructor(
    private readonly rooms: RoomDirectory,
    private readonly store: RedisChatStore,
    private readonly bus: EventBus,
    private readonly onError: (err: unknown, roomId: string) => void,
    private readonly clock: () => number = Date.now,
  ) {}

  changed(room: RoomInfo): void {
    this.rooms.changed(room);
    this.store.roomStatusChanged(room.roomId, room.version, room.live ? 'live' : 'offline').then(
      (seq) => {
        if (!seq) return;
        const kind = room.live ? RoomNoticeKind.ROOM_NOTICE_KIND_LIVE_STARTED : RoomNoticeKind.ROOM_NOTICE_KIND_LIVE_STOPPED;
        this.bus.publish(roomEvent(room.roomId, seq, { notice: { kind, onlineCount: '0', text: '', policy: undefined } }, new Date(this.clock())));
      },
      (err: unknown) => this.onError(err, room.roomId),
    );
  }
}
