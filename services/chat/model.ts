import { invalidField, Violations } from '../../kit/domain-error.js';
import { isPositiveInt64, type Caller } from '../../kit/identity.js';
import { CHAT_CONTRACT, chars, CONTROL_OR_LINE_BREAK as CONTROL } from '../../kit/contract-rules.js';

/** The facts about a room Chat needs: whether it exists, who owns it, whether it is live. */
export interface RoomInfo {
  roomId: string;
  streamerId: string;
  live: boolean;
  /** Room's version; a change event only replaces an older copy. */
  version: string;
}

/** A room's chat rules; the default (never configured) policy has version '0'. */
export interface Policy {
  roomId: string;
  minLevel: number;
  slowModeMs: number;
  chatClosed: boolean;
  version: string;
  updatedAt: Date | undefined;
  updatedBy: string;
}

export const defaultPolicy = (roomId: string): Policy => ({ roomId, minLevel: 0, slowModeMs: 0, chatClosed: false, version: '0', updatedAt: undefined, updatedBy: '0' });

export const LIMITS = {
  ...CHAT_CONTRACT,
  minLevel: 200,
  slowModeS: 300,
  muteMaxS: 30 * 24 * 3600,
  reason: 200,
  /** Messages kept per room for ListRecentMessages and Subscribe's replay. */
  recent: 100,
  defaultRecent: 20,
} as const;

export function checkRoomId(roomId: string, field = 'room_id'): void {
  if (!isPositiveInt64(roomId)) throw invalidField(field, 'must be a positive 64-bit integer');
}

/** Checks a SendMessage request and returns the text as it will be shown (trimmed). */
export function checkMessage(v: Violations, input: { text: string; clientMessageId: string; senderName: string }): string {
  const text = input.text.trim();
  v.check(text.length > 0, 'text', 'must not be empty');
  v.check(chars(text) <= LIMITS.text, 'text', `must be at most ${LIMITS.text} characters (got ${chars(text)})`);
  v.check(!CONTROL.test(text), 'text', 'must not contain control characters or line breaks');
  v.check(/^[A-Za-z0-9._:-]{1,64}$/.test(input.clientMessageId), 'client_message_id', 'must be 1 to 64 characters of A-Z a-z 0-9 . _ : -');
  v.check(chars(input.senderName) <= LIMITS.senderName, 'sender_name', `must be at most ${LIMITS.senderName} characters`);
  v.check(!CONTROL.test(input.senderName), 'sender_name', 'must not contain control characters');
  return text;
}

/** The room's streamer (for their own room) and admins manage it and skip its level, slow-mode and closed rules. */
export function isRoomManager(caller: Caller, room: RoomInfo): boolean {
  return caller.role === 'admin' || (caller.role === 'streamer' && caller.userId === room.streamerId);
}
