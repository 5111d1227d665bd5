// Secret values are looked up by reference at the moment they are needed and
// never copied into status, logs or errors.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SecretKeyRef } from './resources/common.ts';

export interface SecretSource {
  get(ref: SecretKeyRef): Promise<string>;
}

export class SecretNotFoundError extends Error {
  override name = 'SecretNotFoundError';
}

/**
 * Standalone mode: a directory laid out like mounted Secrets
 * (`DIR/<secret>/<key>`), or an environment variable
 * `QUARANTINE_SECRET_<SECRET>_<KEY>` (upper case, other characters as `_`).
 */
export class FileEnvSecretSource implements SecretSource {
  readonly #dir: string | undefined;
  readonly #env: NodeJS.ProcessEnv;
  constructor(dir: string | undefined, env: NodeJS.ProcessEnv = process.env) {
    this.#dir = dir;
    this.#env = env;
  }
  static envName(ref: SecretKeyRef): string {
    return `QUARANTINE_SECRET_${ref.name}_${ref.key}`.toUpperCase().replace(/[^A-Z0-9]/g, '_');
  }
  async get(ref: SecretKeyRef): Promise<string> {
    const fromEnv = this.#env[FileEnvSecretSource.envName(ref)];
    if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
    if (this.#dir !== undefined) {
      try {
        return readFileSync(join(this.#dir, ref.name, ref.key), 'utf8').trim();
      } catch {
        // fall through to the error that names both places
      }
    }
    throw new SecretNotFoundError(
      `secret ${ref.name}/${ref.key} not found: set ${FileEnvSecretSource.envName(ref)}` + (this.#dir === undefined ? ' or pass --secrets DIR' : ` or create ${join(this.#dir, ref.name, ref.key)}`),
    );
  }
}
