import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Server, ServerCredentials, status as Code } from '@grpc/grpc-js';
import { fromBinary, toBinary, create, type DescMessage, type JsonObject } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema, type FileDescriptorProto } from '@bufbuild/protobuf/wkt';
import { ErrorInfo } from '../gen/ts/google/rpc/error_details.js';
import { addReflection, DescriptorIndex, descriptorSetPath } from '../kit/reflection.js';
import { fromRoot } from '../kit/paths.js';
import { isolate } from '../scripts/isolation.js';
import { bufCurl, bufError, bufExitCode, exchange, fileContainingSymbol, reflectedService, runCommand, type BufError, type ReflectionVersion } from './support/reflection.js';
import { as, startRoom } from './support/room.js';
import { pythonGrpcGate } from './support/tools.js';

const ROOM = 'livemesh.room.v1.RoomService';
const ROOM_RPCS = [
  'CreateRoom',
  'UpdateRoom',
  'StartLive',
  'StopLive',
  'AssignGiftGroup',
  'GetRoom',
  'BatchGetRooms',
  'ListLiveRooms',
  'ListHotRooms',
  'ListRoomsByStreamer',
  'EnterRoom',
  'LeaveRoom',
  'GetOnlineCount',
];
const EXPECTED_SERVICES = [ROOM, 'grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection'];

/** What buf compiled: the reference the server's answers are compared against (never used to resolve). */
const descriptorSet = fromBinary(FileDescriptorSetSchema, readFileSync(descriptorSetPath()));
const bufFile = (name: string): FileDescriptorProto | undefined => descriptorSet.file.find((f) => f.name === name);
const livemeshServices = descriptorSet.file.filter((f) => f.package.startsWith('livemesh.')).flatMap((f) => f.service.map((s) => `${f.package}.${s.name}`));

/** Debian's Python with Google's C-core grpcio: the interop client's interpreter (see test/support/tools.ts). */
const python = pythonGrpcGate(import.meta.filename, 'the Python grpcio interop checks');

const run = runCommand;

const authorization = (who: ReturnType<typeof as>): string[] => ['-H', `authorization: ${String(who.get('authorization')[0])}`];

/** The ErrorInfo among a buf curl error's details, decoded. */
function errorInfoOf(err: BufError): ErrorInfo | undefined {
  const detail = err.details?.find((d) => d.type === 'google.rpc.ErrorInfo');
  return detail ? ErrorInfo.decode(Buffer.from(detail.value, 'base64')) : undefined;
}

/** A request with just enough filled in to pass a handler's obvious checks, built from the reflected type. */
function plausibleRequest(input: DescMessage, roomId: string): JsonObject {
  const req: JsonObject = {};
  for (const f of input.fields) {
    if (f.name === 'room_id') req.room_id = roomId;
    else if (f.name === 'room_ids') req.room_ids = [roomId];
    else if (f.name === 'streamer_id') req.streamer_id = '7';
    else if (f.name === 'request_id') req.request_id = randomUUID();
    else if (f.name === 'session_id') req.session_id = 'session-1';
    else if (f.name === 'title') req.title = 'probe';
    else if (f.name === 'room') req.room = { title: 'renamed' };
    else if (f.name === 'update_mask') req.update_mask = 'title';
  }
  return req;
}

describe('server reflection', () => {
  const iso = isolate('reflection');
  let room: Awaited<ReturnType<typeof startRoom>>;

  beforeAll(async () => {
    room = await startRoom(iso);
  });
  afterAll(async () => {
    await room?.close();
    await iso.cleanup();
  });

  it.each<ReflectionVersion>(['v1', 'v1alpha'])('grpc.reflection.%s answers ListServices (buf curl --list-services)', async (version) => {
    const listed = await bufCurl(room.address, ['--list-services', '--reflect-protocol', `grpc-${version}`]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout.trim().split('\n')).toEqual([...EXPECTED_SERVICES].sort());
    const [raw] = await exchange(room.address, [{ listServices: '' }], version);
    expect(raw?.listServicesResponse?.service.map((s) => s.name).sort()).toEqual([...EXPECTED_SERVICES].sort());
  });

  it('FileContainingSymbol returns room.proto with its whole dependency closure, dependency lists intact', async () => {
    const files = await fileContainingSymbol(room.address, ROOM);
    const names = files.map((f) => f.name);
    expect(names[0]).toBe('livemesh/room/v1/room.proto');
    expect([...names].sort()).toEqual(
      ['google/protobuf/field_mask.proto', 'google/protobuf/timestamp.proto', 'livemesh/common/v1/common.proto', 'livemesh/room/v1/room.proto'].sort(),
    );
    expect(files[0]?.dependency).toEqual(['google/protobuf/field_mask.proto', 'google/protobuf/timestamp.proto', 'livemesh/common/v1/common.proto']);
    // grpc-node #2595: every file must keep the imports it was compiled with.
    for (const f of files) expect(f.dependency, f.name).toEqual(bufFile(f.name)?.dependency);
    // Source comments survive (a client describing a type can print them).
    expect(files[0]?.sourceCodeInfo?.location.length).toBeGreaterThan(0);
  });

  it.each<ReflectionVersion>(['v1', 'v1alpha'])('%s: unknown symbol or file is an error_response NOT_FOUND, and the stream goes on', async (version) => {
    const [symbol, file, list] = await exchange(room.address, [{ fileContainingSymbol: 'livemesh.nope.v1.Nothing' }, { fileByFilename: 'nope/nothing.proto' }, { listServices: '' }], version);
    expect(symbol?.errorResponse).toMatchObject({ errorCode: Code.NOT_FOUND });
    expect(symbol?.errorResponse?.errorMessage).toContain('livemesh.nope.v1.Nothing');
    expect(file?.errorResponse).toMatchObject({ errorCode: Code.NOT_FOUND });
    expect(list?.listServicesResponse?.service.map((s) => s.name)).toContain(ROOM);
    const unknown = await bufCurl(`${room.address}/livemesh.nope.v1.Nothing/Get`, ['--reflect-protocol', `grpc-${version}`]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('livemesh.nope.v1.Nothing');
  });

  // buf curl has no "describe" (only --list-services and --list-methods): what a describe would
  // print is checked on the registry built from reflection, the same descriptors buf curl resolves.
  it('lists every RoomService RPC (buf curl --list-methods); reflection gives their request and response types', async () => {
    const listed = await bufCurl(room.address, ['--list-methods']);
    expect(listed.code, listed.stderr).toBe(0);
    const methods = listed.stdout.trim().split('\n').filter((m) => m.startsWith(`${ROOM}/`));
    // buf sorts what it lists.
    expect(methods).toEqual(ROOM_RPCS.map((rpc) => `${ROOM}/${rpc}`).sort());

    const { registry, service } = await reflectedService(room.address, ROOM);
    expect(service.methods.map((m) => m.name)).toEqual(ROOM_RPCS);
    for (const m of service.methods) {
      expect(m.input.typeName).toBe(`livemesh.room.v1.${m.name}Request`);
      expect(m.output.typeName).toBe(`livemesh.room.v1.${m.name}Response`);
    }
    const field = (message: string, name: string) => registry.getMessage(message)?.fields.find((f) => f.name === name);
    expect(field('livemesh.room.v1.ListLiveRoomsRequest', 'page')).toMatchObject({ number: 1, message: { typeName: 'livemesh.common.v1.PageRequest', file: { name: 'livemesh/common/v1/common' } } });
    expect(field('livemesh.room.v1.GetRoomRequest', 'read_mask')).toMatchObject({ number: 2, message: { typeName: 'google.protobuf.FieldMask', file: { name: 'google/protobuf/field_mask' } } });
    expect(field('livemesh.room.v1.Room', 'create_time')).toMatchObject({ number: 9, message: { typeName: 'google.protobuf.Timestamp', file: { name: 'google/protobuf/timestamp' } } });
    expect(registry.getEnum('livemesh.room.v1.RoomStatus')?.values.find((v) => v.name === 'ROOM_STATUS_LIVE')?.number).toBe(2);
  });

  it('CreateRoom and GetRoom work through JSON with nothing but reflection (buf curl)', async () => {
    const create = await bufCurl(`${room.address}/${ROOM}/CreateRoom`, ['-d', JSON.stringify({ title: 'reflected', request_id: randomUUID() }), ...authorization(as('7', 'streamer'))]);
    expect(create.code, create.stderr).toBe(0);
    const created = JSON.parse(create.stdout) as { room: { roomId: string; title: string; streamerId: string } };
    expect(typeof created.room.roomId).toBe('string');
    expect(created.room.roomId).toMatch(/^[1-9]\d*$/);
    expect(created.room).toMatchObject({ title: 'reflected', streamerId: '7' });

    const got = await bufCurl(`${room.address}/${ROOM}/GetRoom`, ['-d', JSON.stringify({ room_id: created.room.roomId, read_mask: 'title' }), ...authorization(as('8', 'viewer'))]);
    expect(got.code, got.stderr).toBe(0);
    expect(JSON.parse(got.stdout)).toEqual({ room: { title: 'reflected' } });

    const camel = await bufCurl(`${room.address}/${ROOM}/GetRoom`, ['-d', JSON.stringify({ roomId: created.room.roomId, readMask: 'title,createTime' }), ...authorization(as('8', 'viewer'))]);
    expect(camel.code, camel.stderr).toBe(0);
    expect(JSON.parse(camel.stdout)).toMatchObject({ room: { title: 'reflected', createTime: expect.any(String) } });
  });

  it('GetRoom with room_id "0" is INVALID_ARGUMENT naming room_id, with ErrorInfo (buf curl prints it as JSON)', async () => {
    const failed = await bufCurl(`${room.address}/${ROOM}/GetRoom`, ['-d', '{"room_id":"0"}', ...authorization(as('8', 'viewer'))]);
    expect(failed.code).toBe(bufExitCode(Code.INVALID_ARGUMENT));
    const err = bufError(failed.stderr);
    expect(err.code).toBe('invalid_argument');
    expect(err.message).toContain('room_id');
    expect(errorInfoOf(err)).toMatchObject({ reason: 'FIELD_INVALID', domain: 'livemesh', metadata: { field: 'room_id' } });
    expect(err.details?.map((d) => d.type)).toContain('google.rpc.BadRequest');
  });

  it('bad JSON and unknown methods fail locally with clear errors', async () => {
    const bad = await bufCurl(`${room.address}/${ROOM}/GetRoom`, ['-d', '{"no_such_field": 1}']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('no_such_field');
    const missing = await bufCurl(`${room.address}/${ROOM}/Nope`);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('Nope');
    const otherService = await bufCurl(`${room.address}/livemesh.chat.v1.ChatService/Subscribe`);
    expect(otherService.code).not.toBe(0);
    expect(otherService.stderr).toContain('livemesh.chat.v1.ChatService');
  });

  it('every RoomService RPC encodes, is called and answers cleanly (never a decode failure)', async () => {
    const create = await bufCurl(`${room.address}/${ROOM}/CreateRoom`, ['-d', JSON.stringify({ title: 'all rpcs', request_id: randomUUID() }), ...authorization(as('7', 'streamer'))]);
    expect(create.code, create.stderr).toBe(0);
    const roomId = (JSON.parse(create.stdout) as { room: { roomId: string } }).room.roomId;
    const { service } = await reflectedService(room.address, ROOM);
    const outcomes: Record<string, string> = {};
    for (const method of service.methods) {
      const req = plausibleRequest(method.input, roomId);
      const res = await bufCurl(`${room.address}/${ROOM}/${method.name}`, ['-d', JSON.stringify(req), ...authorization(as('7', 'streamer'))]);
      if (res.code === 0) {
        outcomes[method.name] = 'OK';
        continue;
      }
      // A failed RPC exits with its code shifted by three; below 8 is buf's own failure (a decode error).
      expect(res.code ?? 0, `${method.name}: ${res.stderr}`).toBeGreaterThanOrEqual(8);
      const err = bufError(res.stderr);
      const code = ((res.code ?? 0) >> 3) as Code;
      expect([Code.INTERNAL, Code.UNKNOWN, Code.DATA_LOSS], `${method.name}: ${err.message}`).not.toContain(code);
      // A handler's refusal carries ErrorInfo; only grpc-js's own "not implemented" does not.
      if (code !== Code.UNIMPLEMENTED) expect(errorInfoOf(err)?.reason, method.name).toBeTruthy();
      outcomes[method.name] = Code[code] ?? String(code);
    }
    expect(Object.keys(outcomes)).toEqual(ROOM_RPCS);
    expect(outcomes.CreateRoom).toBe('OK');
    expect(outcomes.GetRoom).toBe('OK');
  });

  it('every livemesh service in the descriptor set resolves through reflection into a complete registry', async () => {
    expect(livemeshServices).toEqual(expect.arrayContaining([ROOM, 'livemesh.gift.v1.GiftService', 'livemesh.ledger.v1.LedgerService', 'livemesh.chat.v1.ChatService', 'livemesh.ranking.v1.RankingService']));
    for (const name of livemeshServices) {
      const { registry, service } = await reflectedService(room.address, name);
      const [pkg, svc] = [name.slice(0, name.lastIndexOf('.')), name.slice(name.lastIndexOf('.') + 1)];
      const expected = descriptorSet.file.find((f) => f.package === pkg && f.service.some((s) => s.name === svc))?.service.find((s) => s.name === svc);
      expect(service.methods.map((m) => m.name), name).toEqual(expected?.method.map((m) => m.name));
      // Walk every type reachable from every method: all must be in the registry built from reflection.
      const seen = new Set<string>();
      const walk = (m: DescMessage) => {
        if (seen.has(m.typeName)) return;
        seen.add(m.typeName);
        expect(registry.getMessage(m.typeName), `${name}: ${m.typeName}`).toBeDefined();
        for (const f of m.fields) {
          if (f.message) walk(f.message);
          if (f.enum) expect(registry.getEnum(f.enum.typeName), `${name}: ${f.enum.typeName}`).toBeDefined();
        }
      };
      for (const method of service.methods) {
        walk(method.input);
        walk(method.output);
        // And a default request encodes.
        expect(toBinary(method.input, create(method.input))).toBeInstanceOf(Uint8Array);
      }
    }
  });

  it.skipIf(python.skip)('a Python grpcio client does the same through reflection alone', async () => {
    const PYTHON = python.need();
    const requestId = randomUUID();
    const streamer = [['authorization', String(as('7', 'streamer').get('authorization')[0])]];
    const viewer = [['authorization', String(as('8', 'viewer').get('authorization')[0])]];
    const first = [{ method: `${ROOM}/CreateRoom`, request: { title: 'from python', request_id: requestId }, metadata: streamer }];
    const step1 = await run(PYTHON, [fromRoot('test', 'interop', 'reflection_client.py'), room.address], JSON.stringify(first));
    expect(step1.code, step1.stderr).toBe(0);
    const out1 = JSON.parse(step1.stdout) as PyOutput;
    expect(out1.services).toEqual([...EXPECTED_SERVICES].sort());
    expect(out1.reflection_version).toBe('v1');

    const described = out1.described;
    expect(Object.keys(described).sort()).toEqual(ROOM_RPCS.map((r) => `${ROOM}/${r}`).sort());
    const create = described[`${ROOM}/CreateRoom`];
    expect(create).toMatchObject({ input: 'livemesh.room.v1.CreateRoomRequest', output: 'livemesh.room.v1.CreateRoomResponse', client_streaming: false, server_streaming: false });
    expect(create?.input_fields).toContainEqual(expect.objectContaining({ name: 'request_id', type: 'string', number: 6 }));
    expect(described[`${ROOM}/GetRoom`]?.input_fields).toContainEqual(
      expect.objectContaining({ name: 'read_mask', type: 'google.protobuf.FieldMask', file: 'google/protobuf/field_mask.proto', fields: ['paths'] }),
    );
    expect(described[`${ROOM}/ListLiveRooms`]?.input_fields).toContainEqual(
      expect.objectContaining({ name: 'page', type: 'livemesh.common.v1.PageRequest', file: 'livemesh/common/v1/common.proto', fields: ['page_size', 'page_token'] }),
    );
    expect(described[`${ROOM}/UpdateRoom`]?.input_fields).toContainEqual(expect.objectContaining({ name: 'room', type: 'livemesh.room.v1.Room' }));

    const [createCall] = out1.calls;
    expect(createCall).toMatchObject({ method: `${ROOM}/CreateRoom`, ok: true, response: { room: { title: 'from python', streamer_id: '7' } } });
    const roomId = createCall?.response?.room?.room_id;
    expect(roomId).toMatch(/^[1-9]\d*$/);

    // Second run through v1alpha: GetRoom by the id, a retry of CreateRoom, and a bad id.
    const second = [
      { method: `${ROOM}/GetRoom`, request: { room_id: roomId, read_mask: 'title,streamerId' }, metadata: viewer },
      { method: `${ROOM}.CreateRoom`, request: { title: 'from python', request_id: requestId }, metadata: streamer },
      { method: `${ROOM}/GetRoom`, request: { room_id: '0' }, metadata: viewer },
    ];
    const step2 = await run(PYTHON, [fromRoot('test', 'interop', 'reflection_client.py'), room.address, '--reflection=v1alpha'], JSON.stringify(second));
    expect(step2.code, step2.stderr).toBe(0);
    const out2 = JSON.parse(step2.stdout) as PyOutput;
    expect(out2.reflection_version).toBe('v1alpha');
    const [get, retry, bad] = out2.calls;
    expect(get).toEqual({ method: `${ROOM}/GetRoom`, ok: true, response: { room: { title: 'from python', streamer_id: '7' } } });
    expect(retry).toMatchObject({ ok: true, response: { room: { room_id: roomId } } });
    expect(bad).toMatchObject({ ok: false, code: 'INVALID_ARGUMENT', error_info: { reason: 'FIELD_INVALID', domain: 'livemesh', metadata: { field: 'room_id' } } });
    expect(bad?.details).toContain('room_id');
  });

  describe('against a server with broken descriptors', () => {
    type Mode = 'no-dependencies' | 'no-closure';
    const servers: Array<{ mode: Mode; server: Server; address: string }> = [];
    const addressOf = (mode: Mode) => servers.find((s) => s.mode === mode)?.address ?? '';

    beforeAll(async () => {
      // no-dependencies: dependency lists emptied, as @grpc/reflection over proto-loader does (grpc-node #2595).
      const stripped = create(FileDescriptorSetSchema, { file: descriptorSet.file.map((f) => ({ ...f, dependency: [] })) });
      // no-closure: dependency names intact, but only the file itself is sent.
      class NoClosure extends DescriptorIndex {
        override closure(name: string): Buffer[] {
          return super.closure(name).slice(0, 1);
        }
      }
      const indexes: Record<Mode, DescriptorIndex> = {
        'no-dependencies': new DescriptorIndex(toBinary(FileDescriptorSetSchema, stripped)),
        'no-closure': new NoClosure(readFileSync(descriptorSetPath())),
      };
      for (const [mode, index] of Object.entries(indexes) as Array<[Mode, DescriptorIndex]>) {
        const server = new Server();
        addReflection(server, index, () => [ROOM]);
        const port = await new Promise<number>((resolve, reject) =>
          server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
        );
        servers.push({ mode, server, address: `127.0.0.1:${port}` });
      }
    });
    afterAll(() => servers.forEach((s) => s.server.forceShutdown()));

    it.each(['no-dependencies', 'no-closure'] as const)('%s: one FileContainingSymbol answer is not enough to resolve the service, naming what is missing', async (mode) => {
      await expect(reflectedService(addressOf(mode), ROOM)).rejects.toThrow(mode === 'no-closure' ? /google\/protobuf\/field_mask\.proto/ : /google\.protobuf\.(FieldMask|Timestamp)|livemesh\.common\.v1/);
    });

    it('buf curl cannot use descriptors without their dependency lists', async () => {
      const res = await bufCurl(`${addressOf('no-dependencies')}/${ROOM}/GetRoom`, ['-d', '{}']);
      expect(res.code).not.toBe(0);
      expect(res.stderr).toContain(`failed to find service named "${ROOM}"`);
      // Without a closure buf asks for each missing file by name and gets through; this server has no RoomService behind its reflection.
      const patched = await bufCurl(`${addressOf('no-closure')}/${ROOM}/GetRoom`, ['-d', '{}']);
      expect(patched.code).toBe(bufExitCode(Code.UNIMPLEMENTED));
    });

    it.skipIf(python.skip).each(['no-dependencies', 'no-closure'] as const)('%s: the Python client exits non-zero', async (mode) => {
      const res = await run(python.need(), [fromRoot('test', 'interop', 'reflection_client.py'), addressOf(mode)], '[]');
      expect(res.code).not.toBe(0);
      expect(res.stderr).toContain('reflection failed');
      expect(res.stderr).toContain(ROOM);
    });
  });
});

interface PyField {
  name: string;
  number: number;
  type: string;
  file?: string;
  fields?: string[];
}
interface PyOutput {
  reflection_version: string;
  services: string[];
  described: Record<string, { input: string; output: string; client_streaming: boolean; server_streaming: boolean; input_fields: PyField[] }>;
  calls: Array<{ method: string; ok: boolean; response?: { room?: { room_id?: string } }; code?: string; details?: string }>;
}
