// Runs the UI's unit tests: each test/*.test.ts(x) is bundled with esbuild
// (the same JSX settings as the app) into a temporary folder, then run by
// node's test runner.
import * as esbuild from 'esbuild';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const tests = readdirSync(here).filter((f) => /\.test\.tsx?$/.test(f));
const out = mkdtempSync(path.join(tmpdir(), 'mica-web-test-'));
try {
  await esbuild.build({
    entryPoints: tests.map((f) => path.join(here, f)),
    bundle: true,
    platform: 'node',
    format: 'esm',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    outdir: out,
    outExtension: { '.js': '.mjs' },
    logLevel: 'warning',
  });
  const files = readdirSync(out).map((f) => path.join(out, f));
  const r = spawnSync(process.execPath, ['--test', ...files], { stdio: 'inherit' });
  process.exitCode = r.status ?? 1;
} finally {
  rmSync(out, { recursive: true, force: true });
}
