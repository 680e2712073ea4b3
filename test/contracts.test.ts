import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FieldDescriptorProto_Type as T, FileDescriptorSet } from '../gen/ts/google/protobuf/descriptor.js';
import { Room } from '../gen/ts/livemesh/room/v1/room.js';
import { descriptorSetPath } from '../services/kit/reflection.js';
import { fromRoot } from '../services/kit/paths.js';

const buf = fromRoot('node_modules', '.bin', 'buf');
const livemeshFiles = () => FileDescriptorSet.decode(readFileSync(descriptorSetPath())).file.filter((f) => f.package?.startsWith('livemesh.'));

describe('contracts', () => {
  it('buf lint (STANDARD + comments on everything) is clean', () => {
    const res = spawnSync(buf, ['lint'], { cwd: fromRoot(), encoding: 'utf8' });
    expect(res.stdout + res.stderr).toBe('');
    expect(res.status).toBe(0);
  });

  it('has no breaking change against main', () => {
    const res = spawnSync(process.execPath, [fromRoot('scripts', 'breaking.mjs'), 'main'], { cwd: fromRoot(), encoding: 'utf8' });
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
  });

  it('defines all five services plus the common package', () => {
    const services = livemeshFiles().flatMap((f) => f.service.map((s) => `${f.package}.${s.name}`));
    expect(services.sort()).toEqual([
      'livemesh.chat.v1.ChatService',
      'livemesh.gift.v1.GiftService',
      'livemesh.ledger.v1.LedgerService',
      'livemesh.ranking.v1.RankingService',
      'livemesh.room.v1.RoomService',
    ]);
    expect(livemeshFiles().some((f) => f.package === 'livemesh.common.v1')).toBe(true);
  });

  it('never uses floating point anywhere in the livemesh contracts (money is int64 minor units)', () => {
    const floats = livemeshFiles().flatMap((f) =>
      f.messageType.flatMap((m) => m.field.filter((x) => x.type === T.TYPE_DOUBLE || x.type === T.TYPE_FLOAT).map((x) => `${f.name}: ${m.name}.${x.name}`)),
    );
    expect(floats).toEqual([]);
  });

  it('every service declares its own ErrorReason enum', () => {
    for (const f of livemeshFiles().filter((x) => x.service.length > 0)) {
      expect(f.enumType.map((e) => e.name).some((n) => n?.endsWith('ErrorReason')), f.name).toBe(true);
    }
  });

  it('64-bit values survive TypeScript and JSON exactly', () => {
    const max = '9223372036854775807';
    const room = Room.fromPartial({ roomId: max, streamerId: '9007199254740993' });
    const decoded = Room.decode(Room.encode(room).finish());
    expect(decoded.roomId).toBe(max);
    expect(decoded.streamerId).toBe('9007199254740993');
    expect(JSON.parse(JSON.stringify(Room.toJSON(decoded)))).toMatchObject({ roomId: max, streamerId: '9007199254740993' });
  });
});
