// The fleet overview is live: with the real demo feeding a real server, an
// injected reranker outage shows on the open overview — breaker open,
// degraded answers above zero — within 5 s, updated in place over the
// page's event stream, without a reload. Then the service's telemetry tab
// draws its charts, and signing out of a live page breaks nothing.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { callApi, ADMIN_PASSWORD, launchBrowser, startDemo, startServer, waitForHydration } from '../harness.mjs';

let server;
let chrome;
let demo;
let control;

const api = (...args) => callApi(server, ...args);

before(async () => {
  server = await startServer();
  const admin = (await api('POST', '/api/v1/auth/login', null, { username: 'admin', password: ADMIN_PASSWORD })).body.token;
  demo = await startDemo(server, admin);
  control = demo.control;
  chrome = await launchBrowser();
});

after(async () => {
  await demo?.stop();
  await chrome?.close();
  await server?.stop();
});

test('a reranker outage shows on the live overview within 5 s, in place', async () => {
  const page = await chrome.browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && /panicked|unreachable/i.test(m.text())) problems.push(m.text()); });

  await page.goto(`${server.base}/login`);
  await waitForHydration(page);
  await page.fill('[data-test="login-username"]', 'admin');
  await page.fill('[data-test="login-password"]', ADMIN_PASSWORD);
  await page.click('[data-test="login-submit"]');
  await page.waitForSelector('[data-test="fleet-overview"]', { timeout: 20_000 });
  await waitForHydration(page);
  await page.waitForSelector('[data-test="live-status"][data-state="connected"]', { timeout: 10_000 });
  assert.match(await page.textContent('[data-test="live-status"]'), /live/i);

  // Both services, each in its card; the reranker's row once the demo reports it.
  await page.waitForSelector('[data-test="service-card-case-review-agent-prod"]', { timeout: 10_000 });
  const breaker = '[data-test="breaker-rag-answer-prod-reranker"]';
  const degraded = '[data-test="degraded-rag-answer-prod-reranker"]';
  await page.waitForSelector(breaker, { timeout: 20_000 });
  assert.notEqual(await page.getAttribute(breaker, 'data-state'), 'open', 'open before any fault');
  // Marks the card's and the cell's DOM nodes: if they survive, the update
  // happened in place and the page did not reload.
  await page.evaluate(({ breaker }) => {
    window.__sameDocument = true;
    document.querySelector(breaker).__marked = true;
  }, { breaker });

  const res = await fetch(`${control}/faults/reranker`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ outage: true }),
  });
  assert.equal(res.status, 200);
  const injected = Date.now();
  await page.waitForFunction(
    ({ breaker, degraded }) => {
      const b = document.querySelector(breaker);
      const d = document.querySelector(degraded);
      return b?.dataset.state === 'open' && Number(d?.dataset.value) > 0;
    },
    { breaker, degraded },
    { timeout: 5_000 },
  );
  const tookMs = Date.now() - injected;
  assert.ok(tookMs <= 5_000, `took ${tookMs} ms`);
  assert.match(await page.textContent(breaker), /open/, 'the state is in words, not colour alone');
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page reloaded');
  assert.equal(await page.evaluate((s) => document.querySelector(s).__marked === true, breaker), true, 'the row was re-created');
  // The broken service comes first, marked as such.
  const first = await page.$eval('[data-test^="service-card-"]', (el) => [el.dataset.test, el.dataset.severity]);
  assert.deepEqual(first, ['service-card-rag-answer-prod', '2']);
  await page.waitForSelector('[data-test="live-status"][data-state="connected"]', { timeout: 1_000 });

  // The service's telemetry tab charts the reranker, breaker included.
  await page.click('[data-test="service-card-rag-answer-prod"] h2 a');
  // `attached`, not visible: with one second of data a series is a flat line
  // of zero height, which the browser reports as having no visible box.
  await page.waitForSelector('[data-test="telemetry-chart-reranker"] svg path.line', { state: 'attached', timeout: 10_000 });
  await page.waitForSelector('[data-test="telemetry-breaker-reranker"][data-state="open"]', { timeout: 10_000 });
  assert.equal(new URL(page.url()).searchParams.get('tab'), 'telemetry');

  // Back on the live overview, signing out tears the stream down cleanly.
  await page.click('[data-test="nav-overview"]');
  await page.waitForSelector('[data-test="live-status"][data-state="connected"]', { timeout: 10_000 });
  await page.click('[data-test="logout"]');
  await page.waitForSelector('[data-test="login-form"]', { timeout: 10_000 });
  assert.equal(new URL(page.url()).pathname, '/login');
  assert.deepEqual(problems, []);
  await page.close();
});
