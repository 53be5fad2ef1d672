// Runs the test files one after the other with Node's test runner (they
// start processes, and the machine may have few cores). Node 20 has
// WebSocket only behind --experimental-websocket; later Nodes have it.

import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const files = readdirSync(dir).filter((f) => f.endsWith('.test.js')).sort().map((f) => `${dir}${f}`);
const flags = typeof WebSocket === 'undefined' ? ['--experimental-websocket'] : [];
const limit = 5 * 60_000; // the whole run takes well under a minute: a hang must not hold CI
const r = spawnSync(process.execPath, [...flags, '--test', '--test-concurrency=1', '--test-timeout=60000', ...process.argv.slice(2), ...files],
  { stdio: 'inherit', timeout: limit, killSignal: 'SIGKILL' });
if (r.error) console.error(`test run stopped: ${r.error.message}`);
process.exit(r.status ?? 1);
