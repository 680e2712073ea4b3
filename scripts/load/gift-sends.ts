import { SendGiftRequest, orderStateToJSON } from '../../gen/ts/livemesh/gift/v1/gift.js';
import { as, isRetryable, unary } from './calls.js';
import type { MeshClients } from './clients.js';
import type { Outcomes } from './outcomes.js';

/**
 * Every SendGift the load attempted, kept so the chaos run can check afterwards that each one was
 * charged once or not at all. One record per idempotency key, however many attempts it took.
 */
export interface GiftSendRecord {
  idempotencyKey: string;
  senderId: string;
  roomId: string;
  streamerId: string;
  giftId: string;
  count: number;
  /** price × count in COIN minor units, as the client expects to be charged */
  amountMinor: string;
  /** each attempt's outcome code, in order */
  attempts: string[];
  /** the last attempt's code: OK, a refusal, or the failure the client gave up on */
  outcome: string;
  /** from the response, when an attempt succeeded */
  orderId?: string;
  orderState?: string;
  firstAt: number;
  lastAt: number;
}

export interface GiftRetryPolicy {
  /** attempts per key, the first included */
  attempts: number;
  /** first backoff; doubles per attempt, capped at 2 s, with jitter */
  backoffMs: number;
}

/**
 * Sends one gift the way a mobile client does: the idempotency key is chosen once, and every retry
 * of an outcome the client cannot know (UNAVAILABLE, a deadline, a reset stream) reuses it. That
 * is what makes "no transfer debited twice" a claim about the services rather than about luck.
 */
export async function sendGiftWithRetries(
  c: MeshClients,
  outcomes: Outcomes,
  record: GiftSendRecord,
  policy: GiftRetryPolicy,
  random: () => number,
  keepTrying: () => boolean,
): Promise<void> {
  const req = SendGiftRequest.fromPartial({ idempotencyKey: record.idempotencyKey, roomId: record.roomId, giftId: record.giftId, count: record.count, senderName: `viewer ${record.senderId}` });
  const md = as(record.senderId, 'viewer');
  for (let attempt = 0; attempt < policy.attempts; attempt++) {
    const startedAt = Date.now();
    const res = await unary(c.gift, 'sendGift', req, md, 5000);
    outcomes.record('gift.send', res.code, startedAt, res.message);
    record.attempts.push(res.code);
    record.outcome = res.code;
    record.lastAt = Date.now();
    if (res.value?.order) {
      record.orderId = res.value.order.orderId;
      record.orderState = orderStateToJSON(res.value.order.state).replace('ORDER_STATE_', '');
    }
    if (!isRetryable(res.code) || !keepTrying()) return;
    const backoff = Math.min(2000, policy.backoffMs * 2 ** attempt);
    await new Promise((r) => setTimeout(r, backoff / 2 + random() * (backoff / 2)));
  }
}
