// Builds mica's browser UI: src/ → ../internal/server/web/dist/ (index.html and
// content-hashed assets), which the Go binary embeds.
//
//   node build.mjs          write the bundle
//   node build.mjs --check  build in memory and fail if the committed
//                           bundle differs (CI runs this)
//
// The build is deterministic: the same sources and the same locked esbuild
// give the same bytes, so the check can compare byte for byte.
import * as esbuild from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(here, '../internal/server/web/dist');
const check = process.argv.includes('--check');

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: ['src/main.tsx'],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  entryNames: 'assets/[name]-[hash]',
  outdir: 'out',
  write: false,
  metafile: true,
  legalComments: 'none',
  charset: 'utf8',
  logLevel: 'warning',
});

// The wanted files: path under dist → bytes.
const files = new Map();
let js = '';
let css = '';
for (const f of result.outputFiles) {
  const rel = path.relative(path.join(here, 'out'), f.path).split(path.sep).join('/');
  files.set(rel, Buffer.from(f.contents));
  if (rel.endsWith('.js')) js = rel;
  if (rel.endsWith('.css')) css = rel;
}
if (!js || !css) throw new Error('build: expected one .js and one .css output');
const icon = readFileSync(path.join(here, 'public/icon.svg'));
const iconName = `assets/icon-${createHash('sha256').update(icon).digest('hex').slice(0, 8)}.svg`;
files.set(iconName, icon);
const html = readFileSync(path.join(here, 'index.html'), 'utf8')
  .replaceAll('%JS%', '/' + js)
  .replaceAll('%CSS%', '/' + css)
  .replaceAll('%ICON%', '/' + iconName);
files.set('index.html', Buffer.from(html));

function listDist(dir, prefix = '') {
  let out = [];
  let ents = [];
  try {
    ents = readdirSync(dir);
  } catch {
    return out;
  }
  for (const e of ents) {
    const p = path.join(dir, e);
    if (statSync(p).isDirectory()) out = out.concat(listDist(p, prefix + e + '/'));
    else out.push(prefix + e);
  }
  return out;
}

if (check) {
  const have = listDist(dist).filter((f) => f !== 'README.md');
  const problems = [];
  for (const [rel, b] of files) {
    let got;
    try {
      got = readFileSync(path.join(dist, rel));
    } catch {
      problems.push(`missing: ${rel}`);
      continue;
    }
    if (!got.equals(b)) problems.push(`differs: ${rel}`);
  }
  for (const rel of have) if (!files.has(rel)) problems.push(`stale: ${rel}`);
  if (problems.length > 0) {
    console.error('internal/server/web/dist does not match a fresh build of web/src:');
    for (const p of problems) console.error('  ' + p);
    console.error('run `npm run build` in web/ (or scripts/web-build.sh) and commit internal/server/web/dist.');
    process.exit(1);
  }
  console.log(`web: internal/server/web/dist matches the sources (${files.size} files)`);
} else {
  for (const rel of listDist(dist)) if (rel !== 'README.md') rmSync(path.join(dist, rel));
  for (const [rel, b] of files) {
    mkdirSync(path.dirname(path.join(dist, rel)), { recursive: true });
    writeFileSync(path.join(dist, rel), b);
  }
  for (const [rel, b] of files) console.log(`${rel.padEnd(40)} ${String(b.length).padStart(8)} bytes`);
}
