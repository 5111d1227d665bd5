// Integration tests read the connection details that test/env/up.sh exports.
// A missing variable is a failure, never a skip: a run that cannot reach a real
// service must say so instead of passing quietly.

export function requireEnv(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new Error(
      `${name} is not set: integration tests need the real services; run them with \`npm test\` ` +
        `(it starts test/env), or \`source test/env/.state/env\` after \`bash test/env/up.sh\``,
    );
  }
  return value;
}

/** A short unique suffix for names (queues, images, databases) made by one test. */
export function uniqueSuffix(): string {
  return `${process.pid.toString(36)}${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}
