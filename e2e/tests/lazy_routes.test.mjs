// The main bundle carries the landing page; every other page is a lazy
// route whose code is a wasm module of its own (scripts/build-site). Proves
// that the landing page loads no such module, that a lazy page loaded
// directly is server-rendered with its modules preloaded and hydrates (its
// controls come alive), and that client-side navigation loads a lazy route.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_PASSWORD, launchBrowser, startServer, waitForHydration } from '../harness.mjs';

let server;
let chrome;

before(async () => {
  server = await startServer();
  const login = await fetch(`${server.base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }),
  });
  const { token } = await login.json();
  const created = await fetch(`${server.base}/api/v1/services`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'lazy-svc', environment: 'prod', owner: 'e2e' }),
  });
  assert.equal(created.status, 201);
  chrome = await launchBrowser();
});

after(async () => {
  await chrome?.close();
  await server?.stop();
});

const isSplitModule = (url) => /\/pkg\/(?!ballast_bg\.wasm)[^/]+\.wasm$/.test(new URL(url).pathname);

test('the landing page needs no lazy module; a lazy page loaded directly hydrates; navigation loads lazy routes', async () => {
  const page = await chrome.browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  // Not every failed request is a problem (a new service has no draft: 404),
  // but every one for the bundle is.
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`); });
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
  page.on('response', (r) => { if (r.status() >= 400 && new URL(r.url()).pathname.startsWith('/pkg/')) problems.push(`${r.status()}: ${r.url()}`); });
  const modules = [];
  page.on('request', (r) => { if (isSplitModule(r.url())) modules.push(new URL(r.url()).pathname); });

  await page.goto(`${server.base}/login`);
  await waitForHydration(page);
  await page.fill('[data-test="login-username"]', 'admin');
  await page.fill('[data-test="login-password"]', ADMIN_PASSWORD);
  await page.click('[data-test="login-submit"]');
  await page.waitForSelector('[data-test="nav-services"]', { timeout: 10_000 });
  await page.reload();
  await waitForHydration(page);
  assert.equal(new URL(page.url()).pathname, '/');
  assert.deepEqual(modules, [], 'the login and landing pages loaded a lazy module');

  // Loaded directly: the server renders the page (the editor then loads the
  // policy in the browser); hydration waits for the route's modules, and
  // the controls that need hydration are enabled.
  const res = await page.goto(`${server.base}/services/lazy-svc/prod`);
  const html = await res.text();
  assert.match(html, /data-test="service-name">lazy-svc</, 'not server-rendered');
  assert.match(html, /data-test="tab-editor"/, 'not server-rendered');
  await waitForHydration(page);
  assert.ok(modules.length > 0, 'no lazy module was loaded');
  await page.waitForSelector('[data-test="save-draft"]:not([disabled])', { timeout: 10_000 });

  // Client-side navigation to another lazy route, without a reload.
  await page.evaluate(() => { window.__sameDocument = true; });
  const before = modules.length;
  await page.click('[data-test="nav-users"]');
  await page.waitForSelector('[data-test="users-table"]', { timeout: 10_000 });
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page reloaded');
  assert.ok(modules.length > before, 'the users page loaded no module of its own');
  assert.deepEqual(problems, []);
  await page.close();
});
