import { roomNotFound } from './errors.js';
import { checkRoomId, type RoomInfo } from './model.js';

/**
 * Where room facts come from: the Room service through its cached room directory (Room's
 * client.ts), which change events keep fresh. Undefined when the room does not exist.
 */
export interface RoomSource {
  get(roomId: string): Promise<RoomInfo | undefined>;
  /** A room change event: a newer version replaces what is held. */
  changed(room: RoomInfo): void;
}

/**
 * Room facts for every message and like: a hot room's chat must not become a Room RPC per
 * message, which the source's cache sees to. This adds Chat's own rules: the id is checked first,
 * and a missing room is Chat's NOT_FOUND.
 */
export class RoomDirectory {
  constructor(private readonly source: RoomSource) {}

  /** The room, or NOT_FOUND (Chat's own reason) when it does not exist. */
  async get(roomId: string): Promise<RoomInfo> {
    checkRoomId(roomId);
    const room = await this.source.get(roomId);
    if (!room) throw roomNotFound(roomId);
    return room;
  }

  /** A room change event: a newer version replaces what is cached. */
  changed(room: RoomInfo): void {
    this.source.changed(room);
  }
}
