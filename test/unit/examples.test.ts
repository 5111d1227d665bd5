// Every example a user copies must be valid for the schemas the operator uses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { resourcesFromManifests } from '../../operator/resources/manifest-kinds.ts';

const root = join(import.meta.dirname, '..', '..', 'examples');

for (const dir of readdirSync(root).map((d) => join(root, d)).filter((d) => statSync(d).isDirectory())) {
  test(`examples in ${dir.slice(root.length + 1)}/ are valid resources`, () => {
    const r = resourcesFromManifests(dir);
    assert.ok(r.clouds.length + r.policies.length + r.holds.length + r.restores.length > 0, 'the directory holds resources');
  });
}
