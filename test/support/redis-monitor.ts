import net from 'node:net';

/** One command as Redis's MONITOR reports it. */
export interface MonitoredCommand {
  /** Redis's clock when the command ran, in ms. */
  timeMs: number;
  /** The client connection (`ip:port`), or `lua` for a command a script ran. */
  source: string;
  /** The command and its arguments, unescaped. */
  args: string[];
}

/**
 * Watches a Redis server's commands with MONITOR on a plain socket.
 *
 * Not ioredis's `monitor()`: it sets its "monitoring" state one microtask after MONITOR's `+OK`,
 * so on a busy server a monitor line arriving in the same packet as that `+OK` is taken for the
 * answer to a command never sent, and ioredis throws "Command queue state error" from the socket's
 * data handler — an uncaught exception that fails whichever test runs at the time (seen in CI while
 * another test file kept the shared Redis busy).
 */
export async function monitorRedis(url: string, onCommand: (command: MonitoredCommand) => void): Promise<{ stop(): void }> {
  const u = new URL(url);
  const socket = net.connect(Number(u.port || 6379), u.hostname || '127.0.0.1');
  socket.setEncoding('latin1');
  let buffered = '';
  let ok: () => void;
  let failed: (e: Error) => void;
  const started = new Promise<void>((resolve, reject) => {
    ok = resolve;
    failed = reject;
  });
  let monitoring = false;
  socket.on('error', (e) => failed(e));
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    let end: number;
    while ((end = buffered.indexOf('\r\n')) >= 0) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      if (!monitoring) {
        if (line === '+OK') {
          monitoring = true;
          ok();
        } else failed(new Error(`MONITOR refused: ${line}`));
        continue;
      }
      const command = parseMonitorLine(line);
      if (command) onCommand(command);
    }
  });
  socket.write('MONITOR\r\n');
  try {
    await started;
  } catch (e) {
    socket.destroy();
    throw e;
  }
  return { stop: () => socket.destroy() };
}

const ESCAPES: Record<string, string> = { n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b', '"': '"', '\\': '\\' };

/** Parses `+1712345678.123456 [0 127.0.0.1:5000] "hget" "k\"ey" "f"` (Redis quotes arguments with sdscatrepr). */
export function parseMonitorLine(line: string): MonitoredCommand | undefined {
  const m = /^\+(\d+\.\d+) \[\d+ ([^\]]+)\] (.*)$/.exec(line);
  if (!m) return undefined;
  const args: string[] = [];
  const rest = m[3]!;
  let i = 0;
  while (i < rest.length) {
    if (rest[i] !== '"') {
      i++;
      continue;
    }
    let arg = '';
    i++;
    while (i < rest.length && rest[i] !== '"') {
      if (rest[i] === '\\') {
        const next = rest[i + 1] ?? '';
        if (next === 'x') {
          arg += String.fromCharCode(parseInt(rest.slice(i + 2, i + 4), 16));
          i += 4;
        } else {
          arg += ESCAPES[next] ?? next;
          i += 2;
        }
      } else arg += rest[i++];
    }
    i++;
    args.push(arg);
  }
  return { timeMs: Number(m[1]) * 1000, source: m[2]!, args };
}
