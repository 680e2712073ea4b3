import { runService } from '../../kit/server.js';
import { roomConfigShape, wireRoom } from './service.js';

/** The Room service process: `node dist/services/room/main.js`, configured from the environment. */
await runService({ name: 'room', configShape: roomConfigShape, wire: async (host, config) => void (await wireRoom(host, config)) });
