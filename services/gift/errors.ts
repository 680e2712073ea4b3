import { GiftErrorReason, giftErrorReasonToJSON } from '../../gen/ts/livemesh/gift/v1/gift.js';
import { DomainError, reasonName, type ErrorKind } from '../../kit/domain-error.js';

/** ErrorInfo.domain for every Gift-specific reason. */
const GIFT_DOMAIN = 'livemesh.gift';

export const giftReason = (reason: GiftErrorReason) => reasonName(giftErrorReasonToJSON, reason);

function giftError(kind: ErrorKind, reason: GiftErrorReason, message: string, metadata: Record<string, string> = {}): DomainError {
  return new DomainError(kind, giftReason(reason), message, { domain: GIFT_DOMAIN, metadata });
}

const R = GiftErrorReason;

export const giftNotFound = (giftId: string) => giftError('not_found', R.GIFT_ERROR_REASON_GIFT_NOT_FOUND, `gift ${giftId} not found`, { gift_id: giftId });
export const groupNotFound = (groupId: string) =>
  giftError('not_found', R.GIFT_ERROR_REASON_GIFT_GROUP_NOT_FOUND, `gift group ${groupId} not found`, { gift_group_id: groupId });
export const roomNotFound = (roomId: string) => giftError('not_found', R.GIFT_ERROR_REASON_ROOM_NOT_FOUND, `room ${roomId} not found`, { room_id: roomId });
export const giftNotInRoom = (giftId: string, roomId: string, groupId: string) =>
  giftError('failed_precondition', R.GIFT_ERROR_REASON_GIFT_NOT_IN_ROOM, `gift ${giftId} is not in room ${roomId}'s gift group ${groupId}`, {
    gift_id: giftId,
    room_id: roomId,
    gift_group_id: groupId,
  });
export const roomNotLive = (roomId: string) => giftError('failed_precondition', R.GIFT_ERROR_REASON_ROOM_NOT_LIVE, `room ${roomId} is not live`, { room_id: roomId });
export const giftDisabled = (giftId: string) => giftError('failed_precondition', R.GIFT_ERROR_REASON_GIFT_DISABLED, `gift ${giftId} is disabled`, { gift_id: giftId });
export const insufficientFunds = (orderId: string) =>
  giftError('failed_precondition', R.GIFT_ERROR_REASON_INSUFFICIENT_FUNDS, `not enough COIN for order ${orderId}; nothing was debited`, { order_id: orderId });
/** The current price goes under `price_minor`, the key the contract names, so a client can re-show the gift without another read. */
export const priceChanged = (giftId: string, expected: string, actual: string) =>
  giftError('failed_precondition', R.GIFT_ERROR_REASON_PRICE_CHANGED, `gift ${giftId} now costs ${actual}, not ${expected}`, {
    gift_id: giftId,
    expected_unit_price_minor: expected,
    price_minor: actual,
  });
export const selfGift = (roomId: string) => giftError('failed_precondition', R.GIFT_ERROR_REASON_SELF_GIFT, `streamers cannot send gifts in their own room ${roomId}`, { room_id: roomId });
export const orderNotFound = (orderId: string) => giftError('not_found', R.GIFT_ERROR_REASON_ORDER_NOT_FOUND, `order ${orderId} not found`, { order_id: orderId });
export const orderFailed = (orderId: string, why: string) =>
  giftError('failed_precondition', R.GIFT_ERROR_REASON_ORDER_FAILED, `order ${orderId} failed: ${why}; nothing was debited`, { order_id: orderId });
export const paymentPending = (orderId: string) =>
  giftError('unavailable', R.GIFT_ERROR_REASON_PAYMENT_PENDING, `order ${orderId}: the payment's outcome is not known yet; retry with the same idempotency_key`, {
    order_id: orderId,
  });
export const versionConflict = (what: string, expected: string, actual: string) =>
  giftError('aborted', R.GIFT_ERROR_REASON_VERSION_CONFLICT, `${what} is at version ${actual}, not ${expected}`, { expected_version: expected, current_version: actual });
