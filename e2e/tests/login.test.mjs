// Signing in through the real login page, in headless Chromium, against a
// real server: proves server rendering, hydration, role-aware navigation and
// that forms work without a full page reload.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_PASSWORD, USER_PASSWORD, launchBrowser, startServer, waitForHydration } from '../harness.mjs';

let server;
let chrome;

before(async () => {
  server = await startServer({ users: [['vic', 'viewer']] });
  chrome = await launchBrowser();
});

after(async () => {
  await chrome?.close();
  await server?.stop();
});

async function signIn(page, username, password) {
  await page.goto(`${server.base}/`);
  // Not signed in: the server sends us to the login page.
  assert.equal(new URL(page.url()).pathname, '/login');
  await waitForHydration(page);
  // A marker that a full page load would wipe out.
  await page.evaluate(() => { window.__sameDocument = true; });
  await page.fill('[data-test="login-username"]', username);
  await page.fill('[data-test="login-password"]', password);
  await page.click('[data-test="login-submit"]');
}

test('the login page is rendered by the server before any script runs', async () => {
  const res = await fetch(`${server.base}/login`);
  assert.equal(res.status, 200);
  const html = await res.text();
  assert.match(html, /data-test="login-form"/);
  assert.doesNotMatch(html, /data-hydrated/);
});

test('an admin signs in through the page and sees the overview, without a reload', async () => {
  const page = await chrome.browser.newPage();
  await signIn(page, 'admin', ADMIN_PASSWORD);
  await page.waitForSelector('[data-test="overview-empty"]', { timeout: 10_000 });
  assert.equal(new URL(page.url()).pathname, '/');
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page reloaded');
  const who = await page.textContent('[data-test="current-user"]');
  assert.match(who, /admin/);
  assert.equal(await page.isVisible('[data-test="nav-users"]'), true);
  assert.equal(await page.isVisible('[data-test="nav-audit"]'), true);

  // The session cookie is HttpOnly: scripts cannot read it, the API accepts it.
  assert.equal(await page.evaluate(() => document.cookie.includes('ballast_session')), false);
  const me = await page.evaluate(async () => (await fetch('/api/v1/me')).json());
  assert.equal(me.role, 'admin');

  // The user list loads in the page.
  await page.click('[data-test="nav-users"]');
  await page.waitForSelector('[data-test="users-table"]');
  assert.match(await page.textContent('[data-test="users-table"]'), /vic/);
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'navigation reloaded the page');
  await page.close();
});

test('a wrong password shows an inline error and keeps the page', async () => {
  const page = await chrome.browser.newPage();
  await signIn(page, 'admin', 'not-the-password');
  await page.waitForSelector('[data-test="login-error"]', { timeout: 10_000 });
  assert.match(await page.textContent('[data-test="login-error"]'), /username or password/i);
  assert.equal(new URL(page.url()).pathname, '/login');
  assert.equal(await page.evaluate(() => window.__sameDocument), true);
  await page.close();
});

test('a viewer sees a navigation without admin pages, and can sign out', async () => {
  const page = await chrome.browser.newPage();
  await signIn(page, 'vic', USER_PASSWORD);
  await page.waitForSelector('[data-test="overview-empty"]', { timeout: 10_000 });
  assert.match(await page.textContent('[data-test="current-user"]'), /viewer/);
  assert.equal(await page.isVisible('[data-test="nav-users"]'), false);
  assert.equal(await page.isVisible('[data-test="nav-audit"]'), false);
  await page.click('[data-test="logout"]');
  await page.waitForSelector('[data-test="login-form"]', { timeout: 10_000 });
  assert.equal(new URL(page.url()).pathname, '/login');
  const me = await page.evaluate(async () => (await fetch('/api/v1/me')).status);
  assert.equal(me, 401);
  await page.close();
});
