// Starts a real `ballast serve` on a temporary data directory and a free
// loopback port, and a real headless Chromium (Debian's, not a downloaded one).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { chromium } from 'playwright-core';

const BIN = process.env.BALLAST_BIN ?? new URL('../target/debug/ballast', import.meta.url).pathname;
const SITE_ROOT = process.env.BALLAST_SITE_ROOT ?? new URL('../target/site', import.meta.url).pathname;
export const ADMIN_PASSWORD = 'e2e-admin-password-123';
export const USER_PASSWORD = 'e2e-user-password-123';

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** Creates a user through the real CLI, on the server's data directory. */
function createUser(dataDir, username, role) {
  const r = spawnSync(BIN, ['admin', 'create-user', '--username', username, '--role', role, '--password-stdin'], {
    input: `${USER_PASSWORD}\n`,
    env: { ...process.env, BALLAST_DATA_DIR: dataDir },
  });
  if (r.status !== 0) throw new Error(`create-user failed: ${r.stderr}`);
}

export async function startServer({ users = [], env: extraEnv = {} } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'ballast-e2e-'));
  const port = await freePort();
  // The admin is created by the server's own first-run bootstrap.
  const env = {
    ...process.env,
    BALLAST_DATA_DIR: dataDir,
    BALLAST_LISTEN: `127.0.0.1:${port}`,
    BALLAST_SITE_ROOT: SITE_ROOT,
    BALLAST_ADMIN_PASSWORD: ADMIN_PASSWORD,
    BALLAST_LOG: 'warn',
    ...extraEnv,
  };
  const proc = spawn(BIN, ['serve'], { env, stdio: ['ignore', 'inherit', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const base = `http://127.0.0.1:${port}`;
  // Poll readiness with a hard bound: the server is up when /readyz says so.
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`ballast exited early: ${stderr}`);
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`ballast did not become ready: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const [name, role] of users) createUser(dataDir, name, role);
  return {
    base,
    stderr: () => stderr,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser() {
  // Playwright gives each launch a fresh, empty profile of its own.
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
  return {
    browser,
    async close() {
      await browser.close();
    },
  };
}

/**
 * Calls the REST API of `server`: a JSON body unless `contentType` says
 * otherwise, the bearer token if one is given. Answers `{ status, body }`.
 */
export async function callApi(server, method, path, token, body, contentType = 'application/json') {
  const res = await fetch(`${server.base}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': contentType } : {}) },
    body: body === undefined ? undefined : contentType === 'application/json' ? JSON.stringify(body) : body,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Waits until the page has hydrated: only the wasm app sets this marker. */
export async function waitForHydration(page) {
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 20_000 });
}

/**
 * Starts the real demo (`ballast-demo`) against `server`: rag-answer and
 * case-review-agent in prod, rag-answer publishing examples/policies/rag-answer.yaml
 * (at medium risk, so it publishes without a second person), two instances each.
 * Resolves once the demo's control API answers (bounded). Returns its control
 * URL, which injects faults (`POST /faults/reranker {"outage": true}`), and stop().
 */
export async function startDemo(server, adminToken) {
  const api = (...args) => callApi(server, ...args);
  for (const name of ['rag-answer', 'case-review-agent']) {
    const r = await api('POST', '/api/v1/services', adminToken, { name, environment: 'prod', owner: 'e2e' });
    if (r.status !== 201) throw new Error(`creating ${name}: ${r.status} ${JSON.stringify(r.body)}`);
  }
  const yaml = readFileSync(new URL('../examples/policies/rag-answer.yaml', import.meta.url), 'utf8')
    .replace('risk_tier: high', 'risk_tier: medium');
  const draft = await api('PUT', '/api/v1/services/rag-answer/prod/draft', adminToken, yaml, 'application/yaml');
  if (draft.status !== 200) throw new Error(`draft: ${draft.status} ${JSON.stringify(draft.body)}`);
  const published = await api('POST', '/api/v1/services/rag-answer/prod/publish', adminToken, { message: 'v1' });
  if (published.body?.version !== 1) throw new Error(`publish: ${published.status} ${JSON.stringify(published.body)}`);
  const token = async (service) =>
    (await api('POST', '/api/v1/tokens', adminToken, { service, environment: 'prod' })).body.token;
  const demoBin = process.env.BALLAST_DEMO_BIN ?? join(dirname(BIN), 'ballast-demo');
  const stateDir = mkdtempSync(join(tmpdir(), 'ballast-demo-'));
  const control = `http://127.0.0.1:${await freePort()}`;
  const proc = spawn(
    demoBin,
    ['--url', server.base, '--instances', '2', '--rps', '8', '--case-rps', '1',
      '--control', control.slice('http://'.length), '--state-dir', stateDir],
    {
      env: { ...process.env, BALLAST_TOKEN_RAG: await token('rag-answer'), BALLAST_TOKEN_CASE: await token('case-review-agent'), RUST_LOG: 'warn', BALLAST_LOG: 'warn' },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const stop = async () => {
    if (proc.exitCode === null) {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    }
    rmSync(stateDir, { recursive: true, force: true });
  };
  // The control API is up once it answers; bounded.
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) { await stop(); throw new Error(`ballast-demo exited with ${proc.exitCode}`); }
    try {
      if ((await fetch(`${control}/faults`)).ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) { await stop(); throw new Error('the demo control API did not come up'); }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { control, stop };
}
