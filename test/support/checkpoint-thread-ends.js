// @ts-check
// A checkpoint thread body for test/unit/ledger-checkpoint-thread.test.ts: ready, then gone.
import { parentPort } from 'node:worker_threads';

parentPort?.postMessage('ready');
setTimeout(() => process.exit(3), 20);
