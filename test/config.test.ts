import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { ConfigError, EXIT_CONFIG, flag, kitConfigShape, onOff, parseConfig, resolveKitDefaults } from '../kit/config.js';
import { isolate } from '../scripts/isolation.js';
import { spawnRoom } from './support/room.js';

describe('config validation', () => {
  it('applies defaults when nothing is set, treating empty strings as unset', () => {
    const c = resolveKitDefaults(parseConfig(kitConfigShape, { PORT: '50051', LOG_LEVEL: '' }));
    expect(c.PORT).toBe(50051);
    expect(c.METRICS_PORT).toBe(51051);
    expect(c.LOG_LEVEL).toBe('info');
    expect(c.MYSQL_URL).toBe('mysql://root@127.0.0.1:3306');
    expect(c.FAULT_ERROR_RATE).toBe(0);
    expect(c.FAULT_METHODS).toEqual([]);
  });

  it.each([
    ['PORT', 'abc', 'PORT must be an integer between 0 and 65535 (got "abc")'],
    ['PORT', '70000', 'PORT must be an integer between 0 and 65535 (got "70000")'],
    ['FAULT_ERROR_RATE', '1.5', 'FAULT_ERROR_RATE must be a number between 0 and 1 (got "1.5")'],
    ['MYSQL_URL', 'http://db', 'MYSQL_URL must be a URL starting with mysql:// or mariadb:// (got "http://db")'],
    ['LOG_LEVEL', 'loud', 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent (got "loud")'],
    ['DRAIN_TIMEOUT_MS', '-5', 'DRAIN_TIMEOUT_MS must be an integer between 0 and 600000 (got "-5")'],
    ['NATS_REPLICAS', '2', 'NATS_REPLICAS must be 1, 3 or 5 (got "2")'],
    ['NATS_REPLICAS', 'three', 'NATS_REPLICAS must be 1, 3 or 5 (got "three")'],
    ['NATS_URL', 'nats://a:4222,http://b:4222', 'NATS_URL must be a URL starting with nats:// or tls://, or a comma-separated list of them (got "nats://a:4222,http://b:4222")'],
    ['NATS_URL', 'nats://a:4222,', 'NATS_URL must be a URL starting with nats:// or tls://, or a comma-separated list of them (got "nats://a:4222,")'],
  ])('rejects %s=%s naming the variable', (key, value, message) => {
    expect(() => parseConfig(kitConfigShape, { [key]: value })).toThrow(new ConfigError([message]));
  });

  it('NATS_URL takes a list of a cluster\'s servers; NATS_REPLICAS is 1 unless set to 3 or 5', () => {
    const c = parseConfig(kitConfigShape, { NATS_URL: 'nats://n1:4222, nats://n2:4222,tls://n3:4222', NATS_REPLICAS: '3' });
    expect(c.NATS_URL).toBe('nats://n1:4222, nats://n2:4222,tls://n3:4222');
    expect(c.NATS_REPLICAS).toBe(3);
    expect(parseConfig(kitConfigShape, {}).NATS_REPLICAS).toBe(1);
    expect(parseConfig(kitConfigShape, { NATS_REPLICAS: '5' }).NATS_REPLICAS).toBe(5);
  });

  it('every switch reads on/off, true/false and 1/0 (any case); anything else names the variable', () => {
    const shape = { A: onOff('off'), B: flag(true) };
    for (const [raw, on] of [['on', true], ['TRUE', true], ['1', true], ['off', false], ['False', false], ['0', false]] as const) {
      expect(parseConfig(shape, { A: raw, B: raw })).toEqual({ A: on ? 'on' : 'off', B: on });
    }
    expect(parseConfig(shape, {})).toEqual({ A: 'off', B: true });
    expect(() => parseConfig(shape, { A: 'yes' })).toThrow(new ConfigError(['A must be on or off (true/false and 1/0 are accepted too) (got "yes")']));
  });

  it('reports every bad variable at once', () => {
    try {
      parseConfig(kitConfigShape, { PORT: 'x', REDIS_URL: 'nope' });
      expect.unreachable();
    } catch (err) {
      expect((err as ConfigError).problems.map((p) => p.split(' ')[0])).toEqual(['PORT', 'REDIS_URL']);
    }
  });

  it('a real service process with a bad value exits with one clear line and no stack', async () => {
    const iso = isolate('config');
    const child = spawnRoom(iso, { PORT: '50o51' });
    let stderr = '';
    let stdout = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    const [code] = (await once(child, 'exit')) as [number];
    expect(code).toBe(EXIT_CONFIG);
    expect(stderr.trim().split('\n')).toEqual(['config error: PORT must be an integer between 0 and 65535 (got "50o51")']);
    expect(stdout).toBe('');
  });

  it('NATS_REPLICAS=3 against a standalone NATS server exits EX_CONFIG naming the setting, rather than waiting for ever', async () => {
    const iso = isolate('config-replicas');
    try {
      const child = spawnRoom(iso, { NATS_REPLICAS: '3' });
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const [code] = (await once(child, 'exit')) as [number];
      expect(code).toBe(EXIT_CONFIG);
      expect(stderr).toContain('config error: NATS_REPLICAS=3 needs a JetStream cluster of at least 3 servers, but');
      expect(stderr).toContain('is a standalone server');
    } finally {
      await iso.cleanup();
    }
  }, 30_000);
});
