import { runService } from '../../kit/server.js';
import { giftConfigShape, wireGift } from './service.js';

/** The Gift service process: `node dist/services/gift/main.js`, configured from the environment. */
await runService({ name: 'gift', configShape: giftConfigShape, wire: async (host, config) => void (await wireGift(host, config)) });
