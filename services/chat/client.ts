/**
 * Chat's public face: what other services (and the BFF) may use of Chat, a typed promise client
 * (Subscribe, a server stream, is on `raw`). Nothing else of services/chat is imported from outside it.
 */
import { ChatServiceClient } from '../../gen/ts/livemesh/chat/v1/chat.js';
import { promiseClient, type PromiseClient } from '../../kit/clients.js';
import type { MeshCredentials } from '../../kit/credentials.js';

export type ChatClient = PromiseClient<ChatServiceClient>;

/** A Chat client over lb/ (P2C over every replica `target` names, this process's token, mTLS when configured). */
export const chatClient = (target: string, credentials: MeshCredentials): ChatClient => promiseClient(ChatServiceClient, target, credentials);
