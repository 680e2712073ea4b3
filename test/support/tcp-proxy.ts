// Moved to scripts/chaos/ so the chaos run (a script, which must not import test helpers) can cut MySQL too.
export { startTcpProxy, type TcpProxy } from '../../scripts/chaos/tcp-proxy.js';
