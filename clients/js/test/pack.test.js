// npm pack produces the package: the built ES modules and their types,
// the README, no sources, tests or dependencies; the packed package loads
// from its own files.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const npm = process.env.npm_execpath && process.env.npm_execpath.endsWith('.js')
  ? [process.execPath, process.env.npm_execpath] : ['npm'];

test('npm pack: the package holds dist, types and README, and loads', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xserver-js-pack-'));
  try {
    const out = execFileSync(npm[0], [...npm.slice(1), 'pack', '--ignore-scripts', '--json', '--pack-destination', dir],
      { cwd: root, encoding: 'utf8' });
    const [info] = JSON.parse(out);
    const files = info.files.map((f) => f.path).sort();
    for (const f of ['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/node.js', 'dist/node.d.ts',
      'dist/client.js', 'dist/wire.js', 'dist/core.js']) {
      assert.ok(files.includes(f), `${f} packed (files: ${files.join(', ')})`);
    }
    assert.deepEqual(files.filter((f) => !/^(package\.json|README\.md|dist\/[a-z]+\.(js|d\.ts))$/.test(f)), [], 'nothing else');

    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    assert.equal(pkg.dependencies, undefined, 'no runtime dependencies');
    assert.equal(pkg.type, 'module');

    execFileSync('tar', ['xzf', join(dir, info.filename), '-C', dir]);
    const base = pathToFileURL(join(dir, 'package/'));
    const main = await import(new URL(pkg.exports['.'].default, base));
    const node = await import(new URL(pkg.exports['./node'].default, base));
    for (const name of ['Client', 'login', 'lookupGateway', 'webSocket', 'KickError', 'Code', 'wire']) assert.ok(main[name], name);
    assert.equal(typeof node.tcp, 'function');
    assert.equal(node.Client, main.Client, './node re-exports the same classes');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
