// Service level objectives end to end, against the real demo feeding a real
// server. The RAG service's objectives get figures from the demo's request
// records; then a canary of a policy that breaks the demo (the reranker's
// timeout at 1 ms: every answer falls back to fused ranking, so it is
// degraded and the `full-quality` objective burns about ten times as fast as
// on the stable version) is rolled back by the canary analysis on its own,
// within a stated bound. The overview card says so and why, the service page
// lists the decision, and the audit log holds the automatic abort by the
// analysis.
//
// The canary takes 10 % of instances: the harness's demo runs two RAG
// instances, `demo-rag-answer-0` and `-1`, whose canary buckets (SHA-256 of
// the id, mod 100) are 19 and 8; 10 % puts exactly one of them on the
// canary and leaves the other stable to compare with (50 % would take both).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { callApi, ADMIN_PASSWORD, launchBrowser, startDemo, startServer, waitForHydration } from '../harness.mjs';

// The bound the issue asks us to state. The evaluator runs every 5 s, the
// analysis judges after `min_requests: 30` canary requests (the canary
// instance gets about half of the demo's 8 requests a second, so ~8 s), and
// agents report their records every few seconds; 90 s leaves room for a
// loaded machine.
const ROLLBACK_BOUND_MS = 90_000;

let server;
let chrome;
let demo;
let admin;

const api = (...args) => callApi(server, ...args);
const SERVICE = '/api/v1/services/rag-answer/prod';

before(async () => {
  server = await startServer();
  admin = (await api('POST', '/api/v1/auth/login', null, { username: 'admin', password: ADMIN_PASSWORD })).body.token;
  demo = await startDemo(server, admin);
  chrome = await launchBrowser();
});

after(async () => {
  await demo?.stop();
  await chrome?.close();
  await server?.stop();
});

async function signIn() {
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
  return { page, problems };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('a canary that burns the quality budget is rolled back on its own; the overview says why', async () => {
  const { page, problems } = await signIn();

  // The service page's objectives show real figures from the demo.
  await page.goto(`${server.base}/services/rag-answer/prod?tab=objectives`);
  await waitForHydration(page);
  await page.waitForSelector('[data-test="objective-full-quality"]', { timeout: 20_000 });
  const ids = await page.$$eval('[data-test^="objective-"][data-kind]', (els) => els.map((e) => e.dataset.test));
  assert.deepEqual(ids, [
    'objective-answer-latency', 'objective-availability', 'objective-full-quality',
    'objective-no-unauthorized-retrieval', 'objective-no-answer-without-evidence',
  ]);
  // Figures arrive once the agents have reported requests; the panel
  // refreshes every 10 s on its own.
  const figuresAt = Date.now();
  await page.waitForFunction(
    () => /of \d+\)/.test(document.querySelector('[data-test="objective-achieved-full-quality"]')?.textContent ?? ''),
    null, { timeout: 60_000 },
  );
  console.log(`objectives showed figures ${((Date.now() - figuresAt) / 1000).toFixed(1)} s after the page loaded`);
  const budget = await page.$eval('[data-test="objective-budget-availability"]', (e) => Number(e.dataset.value));
  assert.ok(budget <= 10_000, `budget ${budget}`);
  const chart = await page.$eval('[data-test="burn-down-full-quality"] svg', (e) => [e.getAttribute('role'), e.getAttribute('aria-label')]);
  assert.equal(chart[0], 'img');
  assert.match(chart[1], /^Error budget of full-quality over the last \d+ days .*now .*(left|spent)/);
  assert.equal(await page.$('[data-test="canary-history"]'), null, 'a decision before any canary');

  // Publish the breaking policy to a 10 % canary through the REST API.
  const v1 = await api('GET', `${SERVICE}/versions/1`, admin);
  assert.equal(v1.status, 200);
  const document = v1.body.policy;
  document.timeouts.dependencies = { ...document.timeouts.dependencies, reranker: 1 };
  const published = await api('POST', `${SERVICE}/publish`, admin, {
    message: 'e2e: a reranker timeout of 1 ms', canary_percent: 10, document,
  });
  assert.equal(published.status, 201, JSON.stringify(published.body));
  assert.equal(published.body.status, 'published', JSON.stringify(published.body));
  assert.equal(published.body.canary, true);
  const canaryVersion = published.body.version;
  const publishedAt = Date.now();
  const rollout = (await api('GET', SERVICE, admin)).body.rollout;
  assert.equal(rollout.canary_version, canaryVersion);

  // While it runs, the objectives tab compares it with the stable version
  // (if the analysis has not already decided by the time it loads).
  await page.reload();
  await waitForHydration(page);
  await page.waitForSelector('[data-test="canary-comparison"], [data-test^="canary-history-"]', { timeout: 20_000 });

  // The analysis rolls it back on its own, within the bound.
  let rolledBackAfter;
  for (;;) {
    const { body } = await api('GET', SERVICE, admin);
    if (body.rollout.canary_version == null) {
      rolledBackAfter = Date.now() - publishedAt;
      assert.equal(body.rollout.active_version, 1, 'the stable version stays active');
      break;
    }
    assert.ok(Date.now() - publishedAt < ROLLBACK_BOUND_MS,
      `the canary still runs ${ROLLBACK_BOUND_MS / 1000} s after its publish: ${JSON.stringify(await api('GET', `${SERVICE}/objectives`, admin))}`);
    await sleep(500);
  }
  console.log(`the canary analysis rolled v${canaryVersion} back ${(rolledBackAfter / 1000).toFixed(1)} s after its publish (bound ${ROLLBACK_BOUND_MS / 1000} s)`);

  // The audit log holds the automatic abort, by the analysis.
  const audit = await api('GET', '/api/v1/audit?limit=500', admin);
  assert.equal(audit.status, 200);
  const aborts = audit.body.filter((e) => e.action === 'rollout.auto_abort');
  assert.equal(aborts.length, 1, JSON.stringify(aborts));
  assert.equal(aborts[0].actor, 'ballast:canary-analysis');

  // The fleet's objectives carry the verdict and its reason.
  const fleet = await api('GET', '/api/v1/objectives', admin);
  const rag = fleet.body.services.find((s) => s.service === 'rag-answer' && s.environment === 'prod');
  assert.equal(rag.last_canary_verdict?.decision, 'aborted', JSON.stringify(rag));
  assert.equal(rag.last_canary_verdict.canary_version, canaryVersion);
  const reason = rag.last_canary_verdict.reason;
  assert.match(reason, /full-quality/);

  // The overview card shows the rollback and its reason, and the budget.
  const overviewAt = Date.now();
  await page.goto(`${server.base}/`);
  await waitForHydration(page);
  const line = await page.waitForSelector('[data-test="canary-verdict-rag-answer-prod"][data-decision="aborted"]', { timeout: 30_000 });
  console.log(`the overview showed the rollback ${((Date.now() - overviewAt) / 1000).toFixed(1)} s after it loaded`);
  assert.match(await line.textContent(), new RegExp(`Canary v${canaryVersion} rolled back automatically`));
  assert.equal(await page.textContent('[data-test="canary-reason-rag-answer-prod"]'), reason);
  const budgetLine = await page.waitForSelector('[data-test="budget-rag-answer-prod"]');
  assert.match(await budgetLine.getAttribute('data-state'), /^(healthy|low|spent)$/);
  assert.match(await budgetLine.textContent(), /Error budget: .*(left|spent)/);
  console.log(`overview: ${(await budgetLine.textContent()).trim()} | ${(await line.textContent()).trim()}`);

  // The alert the analysis fires names why (it may take one more
  // evaluation, 5 s, to be recorded after the abort).
  let canaryAlert;
  for (const until = Date.now() + 20_000; !canaryAlert; await sleep(500)) {
    const alerts = await api('GET', '/api/v1/alerts', admin);
    canaryAlert = alerts.body.find((a) => a.rule === 'slo-rag-answer-prod-canary');
    assert.ok(canaryAlert || Date.now() < until, `no canary alert among ${alerts.body.map((a) => a.rule)}`);
  }
  assert.match(canaryAlert.summary, /full-quality/);
  console.log(`alert ${canaryAlert.rule} (${canaryAlert.state}): ${canaryAlert.summary}`);

  // The service page lists the decision, and no canary runs any more.
  await page.goto(`${server.base}/services/rag-answer/prod?tab=objectives`);
  await waitForHydration(page);
  await page.waitForSelector(`[data-test="canary-history-${canaryVersion}"][data-decision="aborted"]`, { timeout: 20_000 });
  await page.waitForSelector('[data-test="canary-none"]');
  // The page's rollout panel shows no canary either.
  await page.waitForSelector('[data-test="active-version"]');
  assert.equal(await page.$('[data-test="canary"]'), null, 'the rollout panel still shows a canary');

  assert.deepEqual(problems, []);
  await page.close();
});
