import { runService } from '../../kit/server.js';
import { ledgerConfigShape, wireLedger } from './service.js';

/** The Ledger process: `node dist/services/ledger/main.js`, configured from the environment. */
await runService({ name: 'ledger', configShape: ledgerConfigShape, wire: async (host, config) => void (await wireLedger(host, config)) });
