import type { ServerWritableStream } from '@grpc/grpc-js';
import { SendMessageOutcome, type ChatServiceServer, type SubscribeRequest, type SubscribeResponse } from '../../gen/ts/livemesh/chat/v1/chat.js';
import { toStatus } from '../../kit/grpc-errors.js';
import { unary } from '../../kit/handler.js';
import type { Logger } from '../../kit/logger.js';
import type { Likes } from './likes.js';
import { durationMs, fromProtoMinPriority, toProtoEvent, toProtoPolicy } from './mapping.js';
import type { Messages, SendOutcome } from './messages.js';
import type { Policies } from './policies.js';
import type { RoomStream } from './stream.js';
import type { Subscriptions } from './subscriptions.js';

export interface ChatUseCases {
  messages: Messages;
  likes: Likes;
  policies: Policies;
  subscriptions: Subscriptions;
  stream: RoomStream;
}

const OUTCOME: Record<SendOutcome, SendMessageOutcome> = {
  published: SendMessageOutcome.SEND_MESSAGE_OUTCOME_PUBLISHED,
  merged: SendMessageOutcome.SEND_MESSAGE_OUTCOME_MERGED,
  duplicate: SendMessageOutcome.SEND_MESSAGE_OUTCOME_DUPLICATE,
};

/** The gRPC face of the Chat service: wire messages in, domain calls, wire messages out. */
export function chatHandlers({ messages, likes, policies, subscriptions, stream }: ChatUseCases, log: Logger): ChatServiceServer {
  return {
    sendMessage: unary(log, async (req, ctx) => {
      const { messageId, outcome, seq, sentAt } = await messages.send(ctx.caller, req);
      return { messageId, outcome: OUTCOME[outcome], seq: seq ?? '0', sendTime: sentAt };
    }),
    sendLikes: unary(log, async (req, ctx) => ({ acceptedCount: await likes.send(ctx.caller, req.roomId, req.count) })),
    listRecentMessages: unary(log, async (req) => {
      const { events, position } = await messages.recent(req.roomId, req.limit, req.afterSeq);
      return { events: events.map(toProtoEvent), position, dropped: 0 };
    }),
    getRoomHistory: unary(log, async (req) => {
      const { recovered, events, position } = await stream.recover(req.roomId, req.afterOffset, req.epoch, req.limit);
      return { recovered, events: events.map(toProtoEvent), position };
    }),
    getRoomPolicy: unary(log, async (req) => ({ policy: toProtoPolicy(await policies.read(req.roomId)) })),
    setRoomPolicy: unary(log, async (req, ctx) => {
      const p = req.policy;
      const policy = await policies.set(ctx.caller, {
        roomId: req.roomId,
        minLevel: p?.minLevel ?? 0,
        slowModeMs: durationMs(p?.slowMode, 'policy.slow_mode'),
        chatClosed: p?.chatClosed ?? false,
        paths: req.updateMask ?? [],
        expectedVersion: req.expectedVersion,
      });
      return { policy: toProtoPolicy(policy) };
    }),
    muteUser: unary(log, async (req, ctx) => {
      const mute = await policies.mute(ctx.caller, { roomId: req.roomId, userId: req.userId, durationMs: durationMs(req.duration, 'duration'), reason: req.reason });
      return { mute: { roomId: mute.roomId, userId: mute.userId, endTime: mute.end, mutedBy: mute.by, reason: mute.reason } };
    }),
    getLikeCount: unary(log, async (req) => {
      const { total, at } = await likes.total(req.roomId);
      return { likeCount: total, updateTime: at };
    }),
    subscribe: (call: ServerWritableStream<SubscribeRequest, SubscribeResponse>) => void subscribe(subscriptions, call, log),
  };
}

/** Adapts a server stream to the domain's EventSink; failures go through the kit's one normalizer. */
async function subscribe(subscriptions: Subscriptions, call: ServerWritableStream<SubscribeRequest, SubscribeResponse>, log: Logger): Promise<void> {
  const method = call.getPath();
  let ended = false;
  const fail = (err: unknown) => {
    if (ended) return;
    ended = true;
    call.emit('error', toStatus(err, log, method));
  };
  try {
    const { roomId, minPriority, replayRecent } = call.request;
    const close = await subscriptions.open({ roomId, minPriority: fromProtoMinPriority(minPriority), replayRecent }, {
      write: (event, replayed) => void call.write({ event: toProtoEvent(event), replayed }),
      pending: () => call.writableLength,
      end: (err) => {
        if (err) return fail(err);
        if (!ended) {
          ended = true;
          call.end();
        }
      },
    });
    if (call.cancelled) close();
    else call.once('cancelled', close);
  } catch (err) {
    fail(err);
  }
}
