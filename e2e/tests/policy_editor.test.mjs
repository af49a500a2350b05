// An engineer edits a retry policy in the dashboard's form: an invalid value
// shows its error inline and blocks publishing, a valid change publishes, and
// the demo service's instances (real agents, in the ballast-demo process)
// report the new version on the fleet page.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { callApi, ADMIN_PASSWORD, USER_PASSWORD, launchBrowser, startServer, waitForHydration } from '../harness.mjs';

const BIN = process.env.BALLAST_BIN ?? new URL('../../target/debug/ballast', import.meta.url).pathname;
const DEMO_BIN = process.env.BALLAST_DEMO_BIN ?? join(dirname(BIN), 'ballast-demo');

let server;
let chrome;
let demo;
let demoDir;

const api = (...args) => callApi(server, ...args);

before(async () => {
  server = await startServer({ users: [['erin', 'engineer']] });
  const admin = (await api('POST', '/api/v1/auth/login', null, { username: 'admin', password: ADMIN_PASSWORD })).body.token;
  for (const name of ['rag-answer', 'case-review-agent']) {
    assert.equal((await api('POST', '/api/v1/services', admin, { name, environment: 'prod', owner: 'e2e' })).status, 201);
  }
  const yaml = readFileSync(new URL('../../examples/policies/rag-answer.yaml', import.meta.url), 'utf8')
    .replace('risk_tier: high', 'risk_tier: medium');
  assert.equal((await api('PUT', '/api/v1/services/rag-answer/prod/draft', admin, yaml, 'application/yaml')).status, 200);
  assert.equal((await api('POST', '/api/v1/services/rag-answer/prod/publish', admin, { message: 'v1' })).body.version, 1);
  const token = async (service) =>
    (await api('POST', '/api/v1/tokens', admin, { service, environment: 'prod' })).body.token;
  demoDir = mkdtempSync(join(tmpdir(), 'ballast-demo-'));
  demo = spawn(
    DEMO_BIN,
    ['--url', server.base, '--instances', '2', '--rps', '5', '--case-rps', '1', '--control', '127.0.0.1:0', '--state-dir', demoDir],
    {
      env: { ...process.env, BALLAST_TOKEN_RAG: await token('rag-answer'), BALLAST_TOKEN_CASE: await token('case-review-agent'), RUST_LOG: 'warn' },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  chrome = await launchBrowser();
});

after(async () => {
  demo?.kill('SIGTERM');
  await chrome?.close();
  await server?.stop();
  if (demoDir) rmSync(demoDir, { recursive: true, force: true });
});

test('an engineer edits a retry in the form; a bad value blocks publish; a good one reaches the demo instances', async () => {
  const page = await chrome.browser.newPage();
  await page.goto(`${server.base}/login`);
  await waitForHydration(page);
  await page.fill('[data-test="login-username"]', 'erin');
  await page.fill('[data-test="login-password"]', USER_PASSWORD);
  await page.click('[data-test="login-submit"]');
  await page.waitForSelector('[data-test="overview-empty"], [data-test="nav-services"]');

  await page.click('[data-test="nav-services"]');
  await page.waitForSelector('[data-test="service-row-rag-answer"]');
  await page.click('[data-test="service-row-rag-answer"] a');
  const field = '[data-test="editor-retry-embedding-max_attempts"]';
  await page.waitForSelector(field, { timeout: 20_000 });

  // Invalid: above the bound. The error sits beside the field, and publish is blocked.
  await page.fill(field, '9');
  await page.waitForSelector('[data-test="editor-retry-embedding"] [data-test="editor-error"]');
  assert.equal(await page.getAttribute(field, 'aria-invalid'), 'true');
  assert.equal(await page.isDisabled('[data-test="publish-button"]'), true);

  // Valid: publishes as version 2.
  await page.fill(field, '3');
  await page.waitForFunction(() => document.querySelector('[data-test="error-count"]')?.textContent.trim().startsWith('0'));
  assert.equal(await page.isDisabled('[data-test="publish-button"]'), false);
  await page.fill('[data-test="publish-message"]', 'one more embedding attempt');
  await page.click('[data-test="publish-button"]');
  await page.waitForFunction(() => /v2/.test(document.querySelector('[data-test="publish-result"]')?.textContent ?? ''));

  // The demo's agents receive it over their streams and say so in their
  // heartbeats; the fleet page shows every instance's applied version.
  await page.click('[data-test="nav-fleet"]');
  await page.waitForSelector('[data-test="instances-table"]', { timeout: 20_000 });
  await page.waitForFunction(
    () => {
      const rows = [...document.querySelectorAll('[data-test^="instance-row-rag-answer-prod-"]')];
      return rows.length === 2 && rows.every((r) =>
        r.querySelector('[data-test="instance-applied"]')?.textContent.trim().startsWith('v2') &&
        !r.querySelector('[data-test="instance-lagging"]'));
    },
    null,
    { timeout: 20_000 },
  );
  assert.match(await page.textContent('[data-test="fleet-instances-summary"]'), /none lags/);
  const versions = (await api('GET', '/api/v1/services/rag-answer/prod/versions', (await api('POST', '/api/v1/auth/login', null, { username: 'erin', password: USER_PASSWORD })).body.token)).body;
  assert.equal(versions[0].version, 2);
  assert.equal(versions[0].author, 'user:erin');
  await page.close();
});
