// SVG to PNG through rsvg-convert (Debian: librsvg2-bin). PNGs because a
// Markdown viewer shows them everywhere, while an SVG's fonts and sizes
// depend on the viewer; rsvg-convert because it is one small package where a
// headless browser would be hundreds of megabytes.
import { execFile } from 'node:child_process';

export const RSVG_CONVERT = 'rsvg-convert';

/** The PNG of `svg` at the size its width and height attributes give. */
export function svgToPng(svg: string, command = RSVG_CONVERT): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, ['--format=png'], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err === null) {
        resolve(stdout);
        return;
      }
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new Error(`${command} not found; the benchmark plots need it: run \`bash test/env/install.sh\` (it installs the Debian package librsvg2-bin)`));
        return;
      }
      const why = stderr.toString('utf8').trim();
      reject(new Error(`${command} failed: ${why === '' ? err.message : why}`));
    });
    // If the process dies early, writing to it fails with EPIPE; the exit callback above says why.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(svg, 'utf8');
  });
}
