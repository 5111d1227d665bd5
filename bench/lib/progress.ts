// Progress on stderr, so stdout stays clean for whoever pipes the run. On a
// terminal the status line is rewritten in place; elsewhere (CI logs) status
// lines are throttled so a long generation does not flood the log.
import type { Progress } from '../scenario.ts';

export class StderrProgress implements Progress {
  readonly #tty = process.stderr.isTTY === true;
  readonly #prefix: string;
  #lastPlain = 0;
  #dirty = false;

  constructor(prefix = 'bench') {
    this.#prefix = prefix;
  }

  scoped(name: string): StderrProgress {
    return new StderrProgress(`${this.#prefix}:${name}`);
  }

  update(text: string): void {
    if (this.#tty) {
      process.stderr.write(`\r\x1b[2K[${this.#prefix}] ${text}`);
      this.#dirty = true;
      return;
    }
    const now = Date.now();
    if (now - this.#lastPlain < 5_000) return;
    this.#lastPlain = now;
    process.stderr.write(`[${this.#prefix}] ${text}\n`);
  }

  log(text: string): void {
    if (this.#dirty) {
      process.stderr.write('\r\x1b[2K');
      this.#dirty = false;
    }
    process.stderr.write(`[${this.#prefix}] ${text}\n`);
  }
}
