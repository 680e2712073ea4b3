import { status as Code, type ServiceError } from '@grpc/grpc-js';
import mysql from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { badRequestOf, errorInfoOf } from '../kit/grpc-errors.js';
import { mysqlOptions } from '../kit/mysql.js';
import { as, call, useRoomServer } from './support/room.js';

const server = useRoomServer('errors');
const iso = server.iso;
const client = () => server.current.client;

const fail = (p: Promise<unknown>) => p.then(() => expect.unreachable('call should fail'), (e: unknown) => e as ServiceError);
const validCreate = { streamerId: '0', title: 'ok', category: '', coverKey: '', notice: '', requestId: 'k1' };

describe('error model', () => {
  it('a bad request is INVALID_ARGUMENT naming every bad field, with ErrorInfo and BadRequest details', async () => {
    const err = await fail(call(client().createRoom, client(), { ...validCreate, title: '', category: 'Not A Slug', requestId: '' }, as('7', 'streamer')));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.details).toBe('title: must not be empty (and 2 more)');
    expect(errorInfoOf(err.metadata)).toEqual({ reason: 'FIELD_INVALID', domain: 'livemesh', metadata: { field: 'title' } });
    expect(badRequestOf(err.metadata)?.fieldViolations.map((v) => v.field)).toEqual(['title', 'category', 'request_id']);
  });

  it.each([
    [{ roomId: '0' }, 'room_id'],
    [{ roomId: '-5' }, 'room_id'],
    [{ roomId: '1', readMask: ['title', 'secret'] }, 'read_mask'],
  ])('GetRoom %j names %s', async (req, field) => {
    const err = await fail(call(client().getRoom, client(), { readMask: undefined, ...req }));
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(err.details.startsWith(`${field}: `)).toBe(true);
    expect(errorInfoOf(err.metadata)?.metadata.field).toBe(field);
  });

  it('an overlong title is INVALID_ARGUMENT naming title', async () => {
    const err = await fail(call(client().createRoom, client(), { ...validCreate, title: 't'.repeat(101) }, as('7', 'streamer')));
    expect(err.details).toBe('title: must be at most 100 characters');
  });

  it('an unknown room is NOT_FOUND with the Room reason and domain', async () => {
    const err = await fail(call(client().getRoom, client(), { roomId: '987654321', readMask: undefined }));
    expect(err.code).toBe(Code.NOT_FOUND);
    expect(errorInfoOf(err.metadata)).toEqual({ reason: 'ROOM_NOT_FOUND', domain: 'livemesh.room', metadata: { room_id: '987654321' } });
  });

  it('identity problems: none is UNAUTHENTICATED, a viewer writing is PERMISSION_DENIED, a malformed token is UNAUTHENTICATED', async () => {
    expect((await fail(call(client().createRoom, client(), validCreate))).code).toBe(Code.UNAUTHENTICATED);
    const denied = await fail(call(client().createRoom, client(), validCreate, as('7', 'viewer')));
    expect(denied.code).toBe(Code.PERMISSION_DENIED);
    expect(errorInfoOf(denied.metadata)?.reason).toBe('WRITE_NOT_ALLOWED');
    const garbled = as('7', 'streamer');
    garbled.set('authorization', `${String(garbled.get('authorization')[0])}x`);
    const bad = await fail(call(client().createRoom, client(), validCreate, garbled));
    expect(bad.code).toBe(Code.UNAUTHENTICATED);
    expect(bad.details).toMatch(/authorization token refused/);
  });

  it('an unexpected failure is INTERNAL with a correlation id only; the log has the cause', async () => {
    const conn = await mysql.createConnection(mysqlOptions(iso.urls.mysqlUrl, iso.database));
    await conn.query('RENAME TABLE rooms TO rooms_moved');
    try {
      const err = await fail(call(client().createRoom, client(), { ...validCreate, requestId: 'k-internal' }, as('7', 'streamer')));
      expect(err.code).toBe(Code.INTERNAL);
      const info = errorInfoOf(err.metadata);
      expect(info?.reason).toBe('INTERNAL');
      const correlationId = info?.metadata.correlation_id ?? '';
      expect(err.details).toBe(`internal error (correlation id ${correlationId})`);
      expect(err.details).not.toMatch(/rooms|SQL|Table|at /);
      const logged = server.current.logs.lines.find((l) => l.correlationId === correlationId);
      expect(logged?.level).toBe(50);
      expect(JSON.stringify(logged?.err)).toMatch(/rooms/);
    } finally {
      await conn.query('RENAME TABLE rooms_moved TO rooms');
      await conn.end();
    }
  });

  it('the server keeps serving after errors', async () => {
    const res = await call(client().createRoom, client(), { ...validCreate, requestId: 'after' }, as('7', 'streamer'));
    expect(res.room?.title).toBe('ok');
  });
});
