#!/usr/bin/env bash
# Rebuild the demo web page's browser bundle (demo/frontend/dist/demo-frontend.js) from the
# pinned npm packages in demo/frontend/package-lock.json: `npm ci` installs exactly the lock,
# esbuild (pinned in the lock too) bundles src/main.js, and dist/manifest.json records the
# bundle's sha256 and the versions it was built from. The bundle is committed, so neither
# `make demo` nor the tests need npm; tests/demo/test_frontend_bundle.py checks the committed
# bundle against this manifest and the lock. Run it after changing src/ or the lock.
set -euo pipefail

cd "$(dirname "$0")/../demo/frontend"
command -v npm >/dev/null 2>&1 || { echo "build-demo-frontend: npm is needed (Node.js 18+)" >&2; exit 3; }

npm ci --no-audit --no-fund --loglevel=error
mkdir -p dist
npm run --silent build
node - <<'JS'
const fs = require('fs');
const crypto = require('crypto');
const sha256 = (path) => crypto.createHash('sha256').update(fs.readFileSync(path)).digest('hex');
const lock = JSON.parse(fs.readFileSync('package-lock.json', 'utf8'));
const version = (name) => lock.packages[`node_modules/${name}`].version;
// Every npm package with code in the bundle (esbuild's metafile), and its licence text: the
// bundle strips comments, so the notices travel beside it.
const meta = JSON.parse(fs.readFileSync('node_modules/.build-meta.json', 'utf8'));
const bundled = [...new Set(Object.keys(meta.inputs)
  .map((path) => (path.match(/node_modules\/((@[^/]+\/)?[^/]+)/) || [])[1])
  .filter(Boolean))].sort();
const notices = bundled.map((name) => {
  const dir = `node_modules/${name}`;
  const file = fs.readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
  if (!file) throw new Error(`${name} ships no licence file`);
  const pkg = JSON.parse(fs.readFileSync(`${dir}/package.json`, 'utf8'));
  return `${name} ${pkg.version} (${pkg.license})\n\n${fs.readFileSync(`${dir}/${file}`, 'utf8').trim()}\n`;
});
fs.writeFileSync('dist/THIRD-PARTY-LICENSES.txt',
  `Licences of the npm packages bundled into demo-frontend.js\n\n${notices.join('\n' + '-'.repeat(72) + '\n\n')}`);
const manifest = {
  bundle: 'demo-frontend.js',
  sha256: sha256('dist/demo-frontend.js'),
  bytes: fs.statSync('dist/demo-frontend.js').size,
  package_lock_sha256: sha256('package-lock.json'),
  source_sha256: sha256('src/main.js'),
  packages: Object.fromEntries(['@sentry/browser', 'posthog-js', 'esbuild'].map((n) => [n, version(n)])),
  bundled: Object.fromEntries(bundled.map((n) => [n, version(n)])),
};
fs.writeFileSync('dist/manifest.json', JSON.stringify(manifest, null, 2) + '\n');
console.log(`demo-frontend.js: ${manifest.bytes} bytes, sha256 ${manifest.sha256}`);
JS
