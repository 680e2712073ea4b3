import { runService } from '../../kit/server.js';
import { chatConfigShape, wireChat } from './service.js';

/** The Chat service process: `node dist/services/chat/main.js`, configured from the environment. */
await runService({ name: 'chat', configShape: chatConfigShape, wire: async (host, config) => void (await wireChat(host, config)) });
