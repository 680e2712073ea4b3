import { describe, expect, it } from 'vitest';
import { parseBffConfig } from '../bff/config.js';
import { ConfigError } from '../kit/config.js';

describe('BFF config', () => {
  it('names each bad variable', () => {
    expect(() => parseBffConfig({ CACHE_TTL_MS: '5', JWT_SECRET: 'short' })).toThrow(ConfigError);
    try {
      parseBffConfig({ CACHE_TTL_MS: '5', JWT_SECRET: 'short' });
    } catch (err) {
      expect((err as ConfigError).problems).toEqual(['JWT_SECRET must be at least 32 characters (got "short")', 'CACHE_TTL_MS must be an integer between 100 and 60000 (got "5")']);
    }
  });

  it('refuses the development secrets in production; the demo page is off unless asked for', () => {
    expect(() => parseBffConfig({ NODE_ENV: 'production' })).toThrow(/JWT_SECRET must be set in production; TOPUP_SECRET must be set in production/);
    const secrets = { NODE_ENV: 'production', JWT_SECRET: 'j'.repeat(32), TOPUP_SECRET: 't'.repeat(32) };
    expect(parseBffConfig(secrets).DEMO).toBe('off');
    expect(parseBffConfig({ ...secrets, DEMO: 'on' }).DEMO).toBe('on');
    expect(parseBffConfig({}).DEMO).toBe('off');
    expect(parseBffConfig({ DEMO: 'on' }).DEMO).toBe('on');
  });
});
