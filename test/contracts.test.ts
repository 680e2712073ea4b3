import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { FieldDescriptorProto_Type as T, FileDescriptorSet } from '../gen/ts/google/protobuf/descriptor.js';
import { Room } from '../gen/ts/livemesh/room/v1/room.js';
import { descriptorSetPath } from '../kit/reflection.js';
import { fromRoot } from '../kit/paths.js';

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

/**
 * A protoc plugin that generates no code: it writes, for every file buf hands it, the language
 * options the file carries after managed mode, so a test can see what a Go, Java or C# team's
 * generator would be given.
 */
const OPTIONS_PLUGIN = (protobufDir: string) => `
import { readFileSync } from 'node:fs';
import { create, fromBinary, toBinary } from '${pathToFileURL(join(protobufDir, 'index.js')).href}';
import { CodeGeneratorRequestSchema, CodeGeneratorResponseSchema } from '${pathToFileURL(join(protobufDir, 'wkt', 'index.js')).href}';
const req = fromBinary(CodeGeneratorRequestSchema, readFileSync(0));
const KEYS = ['goPackage', 'javaPackage', 'javaMultipleFiles', 'javaOuterClassname', 'csharpNamespace', 'phpNamespace', 'rubyPackage', 'objcClassPrefix'];
const files = {};
for (const f of req.protoFile) files[f.name] = Object.fromEntries(KEYS.filter((k) => f.options?.[k] !== undefined && f.options[k] !== '').map((k) => [k, f.options[k]]));
const content = JSON.stringify(files);
process.stdout.write(toBinary(CodeGeneratorResponseSchema, create(CodeGeneratorResponseSchema, { supportedFeatures: 1n, file: [{ name: 'options.json', content }] })));
`;

type LanguageOptions = Partial<Record<'goPackage' | 'javaPackage' | 'javaOuterClassname' | 'csharpNamespace' | 'phpNamespace' | 'rubyPackage' | 'objcClassPrefix', string>> & { javaMultipleFiles?: boolean };

describe('a contract other languages can consume', () => {
  it('buf managed mode (buf.gen.yaml) gives every livemesh file the options a Go, Java, C#, PHP, Ruby or Objective-C team expects; vendored files keep their own', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'lm-managed-'));
    try {
      const plugin = join(tmp, 'options-plugin.mjs');
      writeFileSync(plugin, OPTIONS_PLUGIN(fromRoot('node_modules', '@bufbuild', 'protobuf', 'dist', 'esm')));
      // The committed buf.gen.yaml's managed section, with the option-reporting plugin in place of ts-proto.
      const { managed } = parseYaml(readFileSync(fromRoot('buf.gen.yaml'), 'utf8')) as { managed: unknown };
      const template = { version: 'v2', managed, plugins: [{ local: [process.execPath, plugin], out: join(tmp, 'out'), strategy: 'all' }] };
      const res = spawnSync(buf, ['generate', '--template', JSON.stringify(template)], { cwd: fromRoot(), encoding: 'utf8' });
      expect(res.stderr).toBe('');
      expect(res.status).toBe(0);
      const files = JSON.parse(readFileSync(join(tmp, 'out', 'options.json'), 'utf8')) as Record<string, LanguageOptions>;

      const livemesh = Object.keys(files).filter((f) => f.startsWith('livemesh/'));
      expect(livemesh.sort()).toEqual(['chat', 'common', 'gift', 'ledger', 'ranking', 'room'].map((p) => `livemesh/${p}/v1/${p}.proto`));
      for (const name of livemesh) {
        const pkg = name.split('/')[1] as string;
        const Pkg = pkg[0]!.toUpperCase() + pkg.slice(1);
        expect(files[name], name).toEqual({
          goPackage: `github.com/livemesh/livemesh/gen/go/livemesh/${pkg}/v1;${pkg}v1`,
          javaPackage: `com.livemesh.${pkg}.v1`,
          javaMultipleFiles: true,
          javaOuterClassname: `${Pkg}Proto`,
          csharpNamespace: `Livemesh.${Pkg}.V1`,
          phpNamespace: `Livemesh\\${Pkg}\\V1`,
          rubyPackage: `Livemesh::${Pkg}::V1`,
          objcClassPrefix: expect.stringMatching(/^LM[A-Z]{2}$/),
        });
      }
      // Objective-C has one namespace: every package needs a prefix of its own.
      expect(new Set(livemesh.map((f) => files[f]?.objcClassPrefix)).size).toBe(livemesh.length);
      // Upstream files are imported by the contracts (google.rpc.Status) and must keep the Go and
      // Java packages their own generated code is published under.
      expect(files['google/rpc/status.proto']).toMatchObject({ goPackage: 'google.golang.org/genproto/googleapis/rpc/status;status', javaPackage: 'com.google.rpc' });
      expect(files['grpc/health/v1/health.proto']).toMatchObject({ goPackage: 'google.golang.org/grpc/health/grpc_health_v1', javaPackage: 'io.grpc.health.v1' });
      expect(files['xds/data/orca/v3/orca_load_report.proto']).toMatchObject({ goPackage: 'github.com/cncf/xds/go/xds/data/orca/v3' });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('buf.yaml names the livemesh module', () => {
    const config = parseYaml(readFileSync(fromRoot('buf.yaml'), 'utf8')) as { version: string; modules: Array<{ path: string; name?: string }> };
    expect(config.version).toBe('v2');
    expect(config.modules.find((m) => m.path === 'proto')?.name).toBe('buf.build/livemesh/livemesh');
  });

  it('proto/vendor holds the installed packages\' copies of the third-party protos', () => {
    const res = spawnSync(process.execPath, [fromRoot('scripts', 'vendor-protos.mjs'), '--check'], { cwd: fromRoot(), encoding: 'utf8' });
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
  });

  it('needs nothing generated: committed files alone lint, build the descriptor set reflection serves, and run the breaking check', () => {
    // A clone without gen/: proto/, buf.yaml and the breaking script, committed as its own main.
    const tmp = mkdtempSync(join(tmpdir(), 'lm-clone-'));
    try {
      cpSync(fromRoot('proto'), join(tmp, 'proto'), { recursive: true });
      cpSync(fromRoot('buf.yaml'), join(tmp, 'buf.yaml'));
      cpSync(fromRoot('scripts', 'breaking.mjs'), join(tmp, 'scripts', 'breaking.mjs'));
      symlinkSync(fromRoot('node_modules'), join(tmp, 'node_modules'));
      const git = (...args: string[]) => spawnSync('git', ['-c', 'user.name=test', '-c', 'user.email=test@example.invalid', ...args], { cwd: tmp, encoding: 'utf8' });
      expect(git('init', '-q', '-b', 'main').status).toBe(0);
      expect(git('add', 'proto', 'buf.yaml').status).toBe(0);
      expect(git('commit', '-q', '-m', 'contracts').status).toBe(0);

      const lint = spawnSync(buf, ['lint'], { cwd: tmp, encoding: 'utf8' });
      expect(lint.stdout + lint.stderr).toBe('');
      const built = spawnSync(buf, ['build', '--as-file-descriptor-set', '-o', join(tmp, 'descriptor.binpb')], { cwd: tmp, encoding: 'utf8' });
      expect(built.stderr).toBe('');
      expect(readFileSync(join(tmp, 'descriptor.binpb')).equals(readFileSync(descriptorSetPath()))).toBe(true);
      const breaking = spawnSync(process.execPath, [join(tmp, 'scripts', 'breaking.mjs'), 'main'], { cwd: tmp, encoding: 'utf8' });
      expect(breaking.stderr).toBe('');
      expect(breaking.stdout).toContain('no breaking changes against main');
      expect(breaking.status).toBe(0);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
