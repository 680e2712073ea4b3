import { runService } from '../../kit/server.js';
import { rankingConfigShape, wireRanking } from './service.js';

/** The Ranking service process: `node dist/services/ranking/main.js`, configured from the environment. */
await runService({ name: 'ranking', configShape: rankingConfigShape, wire: async (host, config) => void (await wireRanking(host, config)) });
