// Settings that come from the environment, validated in one place.
import { z } from 'zod';
import { DEFAULT_DB_URL } from './ledger/db.ts';

const EnvSchema = z.object({
  QUARANTINE_DB: z.string().min(1).default(DEFAULT_DB_URL),
  QUARANTINE_MANIFESTS: z.string().min(1).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type EnvConfig = z.infer<typeof EnvSchema>;

export function envConfig(env: NodeJS.ProcessEnv = process.env): EnvConfig {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`bad environment: ${issue?.path.join('.') ?? '?'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
