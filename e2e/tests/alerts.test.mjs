// Alerts in the browser, end to end, against the real demo feeding a real
// server: an injected reranker outage opens rag-answer's breaker, the
// server's evaluator fires the built-in breaker-open alert, and the
// overview shows it with its runbook one click away. The engineer on call
// follows that link, starts the runbook's checklist and ticks a step,
// recorded as theirs; then acknowledges the alert on /alerts and the page
// says who did. A rule without a runbook is refused beside the runbook
// field, and the service page offers the reliability report.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { callApi, ADMIN_PASSWORD, USER_PASSWORD, launchBrowser, startDemo, startServer, waitForHydration } from '../harness.mjs';

const ENGINEER = 'al-engineer';
const KEY = 'breaker-open-rag-answer-prod-reranker';

let server;
let chrome;
let demo;
let admin;

const api = (...args) => callApi(server, ...args);

before(async () => {
  server = await startServer({ users: [[ENGINEER, 'engineer']] });
  admin = (await api('POST', '/api/v1/auth/login', null, { username: 'admin', password: ADMIN_PASSWORD })).body.token;
  demo = await startDemo(server, admin);
  chrome = await launchBrowser();
});

after(async () => {
  await demo?.stop();
  await chrome?.close();
  await server?.stop();
});

async function signIn(username, password) {
  const page = await chrome.browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && /panicked|unreachable/i.test(m.text())) problems.push(m.text()); });
  await page.goto(`${server.base}/login`);
  await waitForHydration(page);
  await page.fill('[data-test="login-username"]', username);
  await page.fill('[data-test="login-password"]', password);
  await page.click('[data-test="login-submit"]');
  await page.waitForSelector('[data-test="fleet-overview"]', { timeout: 20_000 });
  await waitForHydration(page);
  return { page, problems };
}

test('a reranker outage fires breaker-open on the overview; its runbook is one click away', async () => {
  const { page, problems } = await signIn(ENGINEER, USER_PASSWORD);
  // Nothing fires before the fault: the demo's reranker is healthy.
  await page.waitForSelector('[data-test="breaker-rag-answer-prod-reranker"]', { timeout: 20_000 });
  assert.equal(await page.$(`[data-test="alert-${KEY}"]`), null, 'firing before any fault');

  const res = await fetch(`${demo.control}/faults/reranker`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ outage: true }),
  });
  assert.equal(res.status, 200);
  // The breaker opens within seconds; the evaluator runs every 5 s and the
  // rule has no hold; the page asks every 5 s. Bounded well above that.
  const injected = Date.now();
  await page.waitForSelector(`[data-test="firing-alerts"] [data-test="alert-${KEY}"]`, { timeout: 45_000 });
  const tookMs = Date.now() - injected;
  assert.equal(await page.getAttribute(`[data-test="alert-${KEY}"]`, 'data-severity'), 'page');
  assert.match(await page.textContent('[data-test="firing-alerts"] h2'), /alerts? firing/);
  // The navigation counts it.
  await page.waitForSelector('[data-test="nav-alerts-count"]', { timeout: 10_000 });
  assert.ok(Number(await page.textContent('[data-test="nav-alerts-count"]')) >= 1);

  // One click: the runbook.
  const link = `[data-test="alert-runbook-${KEY}"]`;
  assert.equal(await page.getAttribute(link, 'href'), '/runbooks/ai-reliability-incident');
  await page.click(link);
  await page.waitForURL(/\/runbooks\/ai-reliability-incident$/, { timeout: 10_000 });
  await page.waitForSelector('[data-test="runbook-html"] h2', { timeout: 10_000 });

  // Work the incident: start the checklist and tick the first step.
  await page.fill('[data-test="checklist-title"]', 'Reranker outage on rag-answer');
  await page.click('[data-test="checklist-start"]:not([disabled])');
  await page.waitForURL(/\/checklists\/[^/]+$/, { timeout: 10_000 });
  await page.waitForSelector('[data-test="checklist-state"][data-status="open"]', { timeout: 10_000 });
  await page.check('[data-test="checklist-step-box-0"]:not([disabled])');
  await page.waitForSelector('[data-test="checklist-step-0"][data-done="true"]', { timeout: 10_000 });
  assert.match(await page.textContent('[data-test="checklist-step-by-0"]'), new RegExp(`^✓ by user:${ENGINEER} at `));

  // Acknowledge it on /alerts; the page says who.
  await page.click('[data-test="nav-alerts"]');
  await page.click(`[data-test="alert-ack-${KEY}"]:not([disabled])`, { timeout: 15_000 });
  const acked = await page.waitForSelector(`[data-test="alert-acked-${KEY}"]`, { timeout: 10_000 });
  assert.match(await acked.textContent(), new RegExp(`Acknowledged by user:${ENGINEER} at \\d{4}-`));
  assert.equal(await page.$(`[data-test="alert-ack-${KEY}"]`), null, 'still offered after acknowledging');
  const recorded = (await api('GET', '/api/v1/alerts?state=firing', admin)).body.find(
    (a) => a.rule === 'breaker-open' && a.service === 'rag-answer' && a.dependency === 'reranker',
  );
  assert.equal(recorded?.acknowledged_by, `user:${ENGINEER}`);
  // One click forces the reranker's breaker open fleet-wide, through the
  // publish path (published, or waiting for an approver where the service's
  // tier says so), and the page says what happened per service.
  await page.click(`[data-test="alert-force-open-${KEY}"]:not([disabled])`, { timeout: 10_000 });
  await page.waitForFunction(
    () => /rag-answer\/prod: /.test(document.querySelector('[data-test="alert-outcome"]')?.textContent ?? ''),
    null,
    { timeout: 10_000 },
  );
  assert.match(
    await page.textContent('[data-test="alert-outcome"]'),
    /reranker's breaker forced open for 30 min\. .*rag-answer\/prod: (waiting for an approver|published as version \d+)/,
  );
  // Either published or waiting for an approver, with its reason.
  const requests = (await api('GET', '/api/v1/publish-requests', admin)).body;
  const versions = (await api('GET', '/api/v1/services/rag-answer/prod/versions', admin)).body;
  assert.ok(
    JSON.stringify([requests, versions]).includes("incident: force reranker's breaker open for 30 min"),
    'the override is a version or a publish request, with its reason',
  );
  // Its runbook is linked from this page too, and the rule is listed as built in.
  assert.equal(await page.getAttribute(`[data-test="alerts-firing"] [data-test="alert-runbook-${KEY}"]`, 'href'), '/runbooks/ai-reliability-incident');
  assert.match(await page.textContent('[data-test="rule-row-breaker-open"]'), /built-in/);
  console.log(`breaker-open showed on the overview ${tookMs} ms after the fault`);
  assert.deepEqual(problems, []);
  await page.close();
});

test('a rule without a runbook is refused beside the runbook field', async () => {
  const { page, problems } = await signIn(ENGINEER, USER_PASSWORD);
  await page.click('[data-test="nav-alerts"]');
  await page.click('[data-test="rule-new"]:not([disabled])', { timeout: 10_000 });
  await page.fill('[data-test="rule-name"]', 'reranker-slow');
  await page.fill('[data-test="rule-dependency"]', 'reranker');
  await page.click('[data-test="rule-save"]:not([disabled])');
  const error = await page.waitForSelector('[data-test="rule-runbook-error"]:not(:empty)', { timeout: 10_000 });
  assert.match(await error.textContent(), /runbook/i);
  assert.equal(await page.getAttribute('[data-test="rule-runbook"]', 'aria-invalid'), 'true');
  // With one, it saves and is listed.
  await page.fill('[data-test="rule-runbook"]', 'ai-reliability-incident');
  await page.click('[data-test="rule-save"]:not([disabled])');
  await page.waitForSelector('[data-test="rule-row-reranker-slow"]', { timeout: 10_000 });
  assert.equal((await api('GET', '/api/v1/alert-rules/reranker-slow', admin)).body.runbook, 'ai-reliability-incident');
  assert.deepEqual(problems, []);
  await page.close();
});

test("the service page links the reliability report and its downloads", async () => {
  const { page, problems } = await signIn(ENGINEER, USER_PASSWORD);
  await page.goto(`${server.base}/services/rag-answer/prod`);
  await waitForHydration(page);
  const base = '/api/v1/services/rag-answer/prod/report';
  assert.equal(await page.getAttribute('[data-test="service-report-html"]', 'href'), `${base}?format=html`);
  assert.equal(await page.getAttribute('[data-test="service-report-download-markdown"]', 'href'), `${base}?format=markdown&download=true`);
  assert.equal(await page.getAttribute('[data-test="service-report-download-html"]', 'href'), `${base}?format=html&download=true`);
  // The link opens the report itself, authenticated by the session cookie.
  const [report] = await Promise.all([
    page.context().waitForEvent('page'),
    page.click('[data-test="service-report-html"]'),
  ]);
  await report.waitForLoadState();
  assert.match(await report.textContent('h1'), /rag-answer/);
  await report.close();
  assert.deepEqual(problems, []);
  await page.close();
});
