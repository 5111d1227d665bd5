// `--listen HOST:PORT`, checked before either mode starts anything.

export interface ListenAddress {
  host: string;
  port: number;
}

/** The address, or a one-line reason it is not one (a usage error for the caller). */
export function parseListen(text: string): ListenAddress | string {
  const m = /^(.*):(\d+)$/.exec(text);
  if (m === null) return `--listen "${text}" is not HOST:PORT`;
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port > 65_535) return `--listen "${text}": port ${m[2]} is not between 0 and 65535`;
  return { host: (m[1] ?? '').replace(/^\[|\]$/g, ''), port };
}
