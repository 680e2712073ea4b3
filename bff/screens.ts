/**
 * A room's public screens that the micro-cache serves, defined once: the router (routes/rooms.ts)
 * mounts each at its route and caches it under its key, the cache-hit fast path (fast-path.ts)
 * recognises the same paths and reads the same keys, and a streamer's change (routes/streamer.ts)
 * drops every key of the room.
 */

export interface RoomScreen {
  /** The Express route; `:id` is the room id. */
  route: string;
  /** The micro-cache key of the screen of one room. */
  cacheKey(roomId: string): string;
  /** Whether showing it to a signed-in user counts as a visit (their recent rooms). */
  notesVisit: boolean;
}

export const ROOM_SCREENS = {
  /** Entering a room: everything the first screen shows. */
  entry: { route: '/v1/rooms/:id', cacheKey: (roomId: string) => `room:${roomId}`, notesVisit: true },
  /** The room's gift bar. */
  gifts: { route: '/v1/rooms/:id/gifts', cacheKey: (roomId: string) => `gifts:${roomId}`, notesVisit: false },
} as const satisfies Record<string, RoomScreen>;

/** Cache keys of a room's public screens, dropped when this replica changes the room. */
export const roomCacheKeys = (roomId: string): string[] => Object.values(ROOM_SCREENS).map((s) => s.cacheKey(roomId));

/** Each screen's route as an exact path pattern: the id is a positive decimal (at most 19 digits). */
const PATTERNS = Object.values(ROOM_SCREENS).map((screen) => ({
  screen,
  pattern: new RegExp(`^${screen.route.replace(/[/]/g, '\\/').replace(':id', '([1-9][0-9]{0,18})')}$`),
}));

/** The screen a request path (without a query string) is, and its room id; undefined for any other path. */
export function matchRoomScreen(path: string): { screen: RoomScreen; roomId: string } | undefined {
  for (const { screen, pattern } of PATTERNS) {
    const roomId = pattern.exec(path)?.[1];
    if (roomId) return { screen, roomId };
  }
  return undefined;
}
