// Runbooks in the browser, end to end: an engineer opens the built-in
// incident runbook from the navigation, starts a checklist, ticks the first
// step and sees it recorded as theirs (and the server agrees), finds it
// among the open incidents and closes it; edits a runbook into version 2;
// is told, when someone saved meanwhile, which version beat them; and
// creates a runbook from the template. A viewer reads runbooks and
// checklists but is offered no Edit, no New and no Start.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { callApi, ADMIN_PASSWORD, USER_PASSWORD, launchBrowser, startServer, waitForHydration } from '../harness.mjs';

const ENGINEER = 'rb-engineer';
const VIEWER = 'rb-viewer';

let server;
let chrome;
let admin;

const api = (...args) => callApi(server, ...args);
const login = async (username, password) =>
  (await api('POST', '/api/v1/auth/login', null, { username, password })).body.token;

before(async () => {
  server = await startServer({ users: [[ENGINEER, 'engineer'], [VIEWER, 'viewer']] });
  admin = await login('admin', ADMIN_PASSWORD);
  chrome = await launchBrowser();
});

after(async () => {
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
  await page.waitForSelector('[data-test="nav-runbooks"]', { timeout: 20_000 });
  return { page, problems };
}

test('an engineer works an incident checklist and every tick is recorded as theirs', async () => {
  const { page, problems } = await signIn(ENGINEER, USER_PASSWORD);
  await page.click('[data-test="nav-runbooks"]');
  await page.click('[data-test="runbook-link-ai-reliability-incident"]', { timeout: 10_000 });
  await page.waitForSelector('[data-test="runbook-html"] h2', { timeout: 10_000 });
  assert.equal(await page.textContent('[data-test="runbook-shown-slug"]'), 'ai-reliability-incident');
  assert.equal(await page.getAttribute('[data-test="runbook-version"]', 'data-version'), '1');

  await page.fill('[data-test="checklist-title"]', 'Reranker timeouts on rag-answer');
  await page.fill('[data-test="checklist-incident"]', 'INC-4711');
  await page.click('[data-test="checklist-start"]:not([disabled])');
  await page.waitForURL(/\/checklists\/[^/]+$/, { timeout: 10_000 });
  const id = decodeURIComponent(new URL(page.url()).pathname.split('/').pop());
  await page.waitForSelector('[data-test="checklist-state"][data-status="open"]', { timeout: 10_000 });
  assert.equal(await page.textContent('[data-test="checklist-incident-ref"]'), 'INC-4711');

  // Tick step 1 with a note: the page shows what the server recorded.
  await page.click('[data-test="step-note-toggle-0"]');
  await page.fill('[data-test="step-note-0"]', 'reranker p95 at 4 s');
  await page.check('[data-test="checklist-step-box-0"]:not([disabled])');
  await page.waitForSelector('[data-test="checklist-step-0"][data-done="true"]', { timeout: 10_000 });
  const by = await page.textContent('[data-test="checklist-step-by-0"]');
  assert.match(by, new RegExp(`^✓ by user:${ENGINEER} at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC$`));
  assert.match(await page.textContent('[data-test="checklist-step-note-0"]'), /reranker p95 at 4 s/);
  assert.equal(await page.getAttribute('[data-test="checklist-step-1"]', 'data-done'), 'false');
  const recorded = await api('GET', `/api/v1/checklists/${encodeURIComponent(id)}`, admin);
  assert.equal(recorded.status, 200);
  assert.equal(recorded.body.steps[0].done, true);
  assert.equal(recorded.body.steps[0].by, `user:${ENGINEER}`);
  assert.equal(recorded.body.events.length, 1);

  // Loaded afresh, the tick is still there.
  await page.reload();
  await waitForHydration(page);
  await page.waitForSelector('[data-test="checklist-step-0"][data-done="true"]', { timeout: 10_000 });
  assert.equal(await page.isChecked('[data-test="checklist-step-box-0"]'), true);

  // It is an open incident on the runbooks page.
  await page.click('[data-test="nav-runbooks"]');
  await page.waitForSelector(`[data-test="open-checklists"] [data-test="checklist-row-${id}"]`, { timeout: 10_000 });
  await page.click(`[data-test="checklist-link-${id}"]`);

  // Closing makes it read-only.
  await page.click('[data-test="checklist-close"]:not([disabled])', { timeout: 10_000 });
  await page.waitForSelector('[data-test="checklist-state"][data-status="closed"]', { timeout: 10_000 });
  await page.waitForSelector('[data-test="checklist-closed"]');
  assert.equal(await page.isDisabled('[data-test="checklist-step-box-1"]'), true);
  assert.equal(await page.$('[data-test="checklist-close"]'), null);
  assert.deepEqual(problems, []);
  await page.close();
});

test('an engineer edits a runbook into version 2, and is told when someone saved meanwhile', async () => {
  const { page, problems } = await signIn(ENGINEER, USER_PASSWORD);
  await page.goto(`${server.base}/runbooks/dlq-growth`);
  await waitForHydration(page);
  await page.click('[data-test="runbook-edit"]:not([disabled])', { timeout: 10_000 });
  const body = await page.inputValue('[data-test="runbook-body"]');
  assert.match(body, /- \[ \]/);
  await page.fill('[data-test="runbook-title"]', 'Dead-letter queue growing (e2e)');
  await page.fill('[data-test="runbook-body"]', `${body}\n- [ ] Tell the service's owner what was redriven.\n`);
  await page.fill('[data-test="runbook-message"]', 'owners want to know');
  await page.click('[data-test="runbook-save"]:not([disabled])');
  await page.waitForSelector('[data-test="runbook-version"][data-version="2"]', { timeout: 10_000 });
  assert.equal(await page.textContent('[data-test="runbook-notice"]'), 'Saved version 2.');
  assert.equal(await page.textContent('[data-test="runbook-heading"]'), 'Dead-letter queue growing (e2e)');
  assert.equal(await page.textContent('[data-test="runbook-fact-author"]'), `user:${ENGINEER}`);
  await page.waitForSelector('[data-test="runbook-version-link-2"][aria-current="page"]', { timeout: 10_000 });

  // Version 1 is still there, read-only.
  await page.click('[data-test="runbook-version-link-1"]');
  await page.waitForSelector('[data-test="runbook-old-version"]', { timeout: 10_000 });
  assert.equal(await page.getAttribute('[data-test="runbook-version"]', 'data-version'), '1');
  assert.equal(await page.$('[data-test="runbook-edit"]'), null);

  // Someone else saves version 3 while this editor is open on version 2.
  await page.goto(`${server.base}/runbooks/dlq-growth`);
  await waitForHydration(page);
  await page.click('[data-test="runbook-edit"]:not([disabled])', { timeout: 10_000 });
  const current = await api('GET', '/api/v1/runbooks/dlq-growth', admin);
  const meanwhile = await api('PUT', '/api/v1/runbooks/dlq-growth', admin, {
    title: current.body.title, body: current.body.body, links: current.body.links, base_version: 2, message: 'meanwhile',
  });
  assert.equal(meanwhile.status, 200, JSON.stringify(meanwhile.body));
  await page.fill('[data-test="runbook-message"]', 'too late');
  await page.click('[data-test="runbook-save"]:not([disabled])');
  const error = await page.waitForSelector('[data-test="runbook-form-error"]', { timeout: 10_000 });
  assert.match(await error.textContent(), /Someone saved version 3 meanwhile/);
  await page.click('[data-test="runbook-reload"]');
  await page.waitForSelector('[data-test="runbook-version"][data-version="3"]', { timeout: 10_000 });
  assert.deepEqual(problems, []);
  await page.close();
});

test('an engineer creates a runbook from the template', async () => {
  const { page, problems } = await signIn(ENGINEER, USER_PASSWORD);
  await page.click('[data-test="nav-runbooks"]');
  await page.click('[data-test="runbook-new"]:not([disabled])', { timeout: 10_000 });
  await page.waitForSelector('[data-test="runbook-body"]', { timeout: 10_000 });
  assert.match(await page.inputValue('[data-test="runbook-body"]'), /- \[ \]/);
  // A slug that is taken is blamed on the slug field.
  await page.fill('[data-test="runbook-slug"]', 'dlq-growth');
  await page.click('[data-test="runbook-save"]:not([disabled])');
  await page.waitForSelector('[data-test="runbook-slug-error"]:has-text("already exists")', { timeout: 10_000 });
  await page.fill('[data-test="runbook-slug"]', 'e2e-reranker-outage');
  await page.fill('[data-test="runbook-title"]', 'Reranker outage');
  await page.fill('[data-test="runbook-failure-types"]', 'breaker_open, timeout_rate');
  await page.click('[data-test="runbook-save"]:not([disabled])');
  await page.waitForURL(/\/runbooks\/e2e-reranker-outage$/, { timeout: 10_000 });
  await page.waitForSelector('[data-test="runbook-version"][data-version="1"]', { timeout: 10_000 });
  assert.equal(await page.textContent('[data-test="runbook-fact-failure-types"]'), 'breaker_open, timeout_rate');
  assert.deepEqual(problems, []);
  await page.close();
});

test('a viewer reads runbooks and checklists but is offered no way to change them', async () => {
  const engineer = await login(ENGINEER, USER_PASSWORD);
  const started = await api('POST', '/api/v1/runbooks/retry-storm/checklists', engineer, { title: 'Retries doubling' });
  assert.equal(started.status, 201, JSON.stringify(started.body));

  const { page, problems } = await signIn(VIEWER, USER_PASSWORD);
  await page.click('[data-test="nav-runbooks"]');
  await page.waitForSelector('[data-test="runbook-link-ai-reliability-incident"]', { timeout: 10_000 });
  assert.equal(await page.$('[data-test="runbook-new"]'), null);
  await page.click('[data-test="runbook-link-ai-reliability-incident"]');
  // The title, the Edit button and the start form are drawn together.
  await page.waitForSelector('[data-test="runbook-html"] h2', { timeout: 10_000 });
  assert.equal(await page.$('[data-test="runbook-edit"]'), null);
  assert.equal(await page.$('[data-test="checklist-start"]'), null);

  await page.goto(`${server.base}/checklists/${encodeURIComponent(started.body.id)}`);
  await waitForHydration(page);
  await page.waitForSelector('[data-test="checklist-step-0"]', { timeout: 10_000 });
  assert.equal(await page.isDisabled('[data-test="checklist-step-box-0"]'), true);
  assert.equal(await page.$('[data-test="checklist-close"]'), null);
  await page.waitForSelector('[data-test="checklist-read-only"]');
  assert.deepEqual(problems, []);
  await page.close();
});
