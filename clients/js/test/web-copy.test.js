// The login example's page (examples/login/web) serves a copy of the SDK's
// browser modules: it must be the current build (make web-sdk refreshes it).

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

const dist = new URL('../dist/', import.meta.url);
const copy = new URL('../../../examples/login/web/sdk/', import.meta.url);

test('examples/login/web/sdk is the current build of the SDK (else: make web-sdk)', () => {
  const want = readdirSync(dist).filter((f) => f.endsWith('.js') && f !== 'node.js').sort();
  assert.deepEqual(readdirSync(copy).sort(), want, 'the same files');
  for (const f of want) {
    assert.ok(readFileSync(new URL(f, copy)).equals(readFileSync(new URL(f, dist))), `sdk/${f} differs from dist/${f}: run make web-sdk`);
  }
});
