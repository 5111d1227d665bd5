import { userInfo } from 'node:os';

/** The local account, as the default actor recorded in the audit trail. */
export const os = {
  user(): string {
    try {
      return userInfo().username;
    } catch {
      return process.env['USER'] ?? 'unknown';
    }
  },
};
