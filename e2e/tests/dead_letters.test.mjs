// Four eyes on a dead letter, end to end: the real demo dead-letters a
// case-review run (its notice fails after the case was closed); an
// engineer asks for a redrive in the browser; the same engineer is offered
// no approval (the button is off and says why) and the API refuses theirs
// with 403; an approver approves from the approvals inbox; the demo agent
// executes the redrive and the entry page, which follows the action while
// it is on its way, shows it succeeded. The audit log holds every step.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { callApi, ADMIN_PASSWORD, USER_PASSWORD, launchBrowser, startServer, waitForHydration } from '../harness.mjs';

const BIN = process.env.BALLAST_BIN ?? new URL('../../target/debug/ballast', import.meta.url).pathname;
const DEMO_BIN = process.env.BALLAST_DEMO_BIN ?? join(dirname(BIN), 'ballast-demo');
const SERVICE = 'case-review-agent';
const ENGINEER = 'dlq-engineer';
const APPROVER = 'dlq-approver';

let server;
let chrome;
let demo;
let demoDir;
let control;
let admin;

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

const api = (...args) => callApi(server, ...args);
const login = async (username, password) =>
  (await api('POST', '/api/v1/auth/login', null, { username, password })).body.token;

/** Polls `probe` until it answers something truthy, for at most `ms`. */
async function eventually(what, probe, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

before(async () => {
  server = await startServer({ users: [[ENGINEER, 'engineer'], [APPROVER, 'approver']] });
  admin = await login('admin', ADMIN_PASSWORD);
  for (const name of ['rag-answer', SERVICE]) {
    assert.equal((await api('POST', '/api/v1/services', admin, { name, environment: 'prod', owner: 'e2e' })).status, 201);
  }
  // The example policy, as the demo runs it: a regulated service, so its
  // publish and every action on its dead letters need a second person.
  const yaml = readFileSync(new URL(`../../examples/policies/${SERVICE}.yaml`, import.meta.url), 'utf8');
  assert.equal((await api('PUT', `/api/v1/services/${SERVICE}/prod/draft`, admin, yaml, 'application/yaml')).status, 200);
  const published = await api('POST', `/api/v1/services/${SERVICE}/prod/publish`, admin, { message: 'v1' });
  assert.equal(published.status, 202, JSON.stringify(published.body));
  const approver = await login(APPROVER, USER_PASSWORD);
  const approved = await api('POST', `/api/v1/publish-requests/${published.body.request_id}/approve`, approver, { comment: 'e2e' });
  assert.equal(approved.status, 200, JSON.stringify(approved.body));

  const token = async (service) =>
    (await api('POST', '/api/v1/tokens', admin, { service, environment: 'prod' })).body.token;
  demoDir = mkdtempSync(join(tmpdir(), 'ballast-demo-'));
  control = `http://127.0.0.1:${await freePort()}`;
  demo = spawn(
    DEMO_BIN,
    ['--url', server.base, '--instances', '2', '--rps', '2', '--case-rps', '0',
      '--control', control.slice('http://'.length), '--state-dir', demoDir],
    {
      env: { ...process.env, BALLAST_TOKEN_RAG: await token('rag-answer'), BALLAST_TOKEN_CASE: await token(SERVICE), RUST_LOG: 'warn', BALLAST_LOG: 'warn' },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  await eventually('the demo control API', async () => {
    if (demo.exitCode !== null) throw new Error(`ballast-demo exited with ${demo.exitCode}`);
    try {
      return (await fetch(`${control}/faults`)).ok;
    } catch {
      return false;
    }
  }, 20_000);
  // The case-review instances run the published policy and follow the
  // stream, which is how approved actions reach them.
  await eventually('the case-review instances to apply v1 and connect', async () => {
    const status = await (await fetch(`${control}/status`)).json();
    const cases = status.instances.filter((i) => i.service === SERVICE);
    return cases.length > 0 && cases.every((i) => i.policy_version === 1 && i.stream_connected);
  }, 20_000);
  chrome = await launchBrowser();
});

after(async () => {
  demo?.kill('SIGTERM');
  await chrome?.close();
  await server?.stop();
  if (demoDir) rmSync(demoDir, { recursive: true, force: true });
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
  await page.waitForSelector('[data-test="nav-services"]', { timeout: 20_000 });
  return { page, problems };
}

test('a redrive is requested, refused to its requester, approved by another person, and executed', async () => {
  // A run whose notice fails after the case was closed: the demo reports it
  // as a dead letter, with the close as its checkpoint.
  const runId = `e2e-dlq-${Date.now()}`;
  const res = await fetch(`${control}/case-review/runs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ run_id: runId, fail_at: 'send_notice' }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  const run = await res.json();
  const entryId = run.dead_letter_id ?? await eventually('the dead letter to be listed', async () => {
    const list = await api('GET', `/api/v1/dead-letters?service=${SERVICE}&environment=prod&limit=100`, admin);
    return list.body?.entries?.find((e) => e.run_id === runId)?.id;
  }, 10_000);

  // The engineer finds it on the service's queue page and asks for a redrive.
  const engineer = await signIn(ENGINEER, USER_PASSWORD);
  let page = engineer.page;
  await page.goto(`${server.base}/services/${SERVICE}/prod/dead-letters`);
  await waitForHydration(page);
  await page.waitForSelector('[data-test="dlq-summary"] [data-test="dlq-depth"]', { timeout: 10_000 });
  assert.ok(Number(await page.textContent('[data-test="dlq-depth"]')) >= 1, 'the queue is empty');
  await page.click(`[data-test="dlq-entry-link-${entryId}"]`);
  await page.waitForSelector('[data-test="dlq-entry-status"][data-status="open"]', { timeout: 10_000 });
  assert.equal(await page.textContent('[data-test="dlq-entry-run"]'), runId);
  assert.match(await page.textContent('[data-test="dlq-entry-payload-hash"]'), /^[0-9a-f]{64}$/);
  await page.waitForSelector('[data-test="dlq-request-submit"]:not([disabled])');
  await page.selectOption('[data-test="dlq-request-kind"]', 'redrive');
  // Regulated: the page says a redrive needs an approver before it is asked.
  assert.match(await page.textContent('[data-test="dlq-request-approval"]'), /needs an approver/i);
  await page.fill('[data-test="dlq-request-reason"]', 'the notifier is back; resume from the close');
  await page.click('[data-test="dlq-request-submit"]');
  const row = await page.waitForSelector('[data-test^="dlq-action-row-"][data-status="requested"]', { timeout: 10_000 });
  const actionId = (await row.getAttribute('data-test')).replace('dlq-action-row-', '');
  await page.waitForSelector('[data-test="dlq-entry-status"][data-status="pending"]');

  // Their own request: Approve is off and says why; the API says 403 too.
  const approve = `[data-test="dlq-approve-${actionId}"]`;
  assert.equal(await page.isDisabled(approve), true, 'the requester may approve their own request');
  assert.match(await page.getAttribute(approve, 'title') ?? '', /someone else/i);
  const engineerToken = await login(ENGINEER, USER_PASSWORD);
  const own = await api('POST', `/api/v1/dlq-actions/${actionId}/approve`, engineerToken, { reason: 'looks fine to me' });
  assert.equal(own.status, 403, JSON.stringify(own.body));
  assert.deepEqual(engineer.problems, []);
  await page.close();

  // The approver sees it waiting (the badge says so in words) and approves
  // it from the inbox.
  const approver = await signIn(APPROVER, USER_PASSWORD);
  page = approver.page;
  await waitForHydration(page);
  await page.waitForSelector('[data-test="nav-approvals"][aria-label="Approvals, 1 waiting"]', { timeout: 10_000 });
  await page.click('[data-test="nav-approvals"]');
  await page.waitForSelector(`[data-test="dlq-action-row-${actionId}"]`, { timeout: 10_000 });
  await page.waitForSelector(`${approve}:not([disabled])`);
  await page.fill(`[data-test="dlq-decision-reason-${actionId}"]`, 'checked the case: the close stands, only the notice is missing');
  await page.click(approve);
  await page.waitForSelector(`[data-test="dlq-action-row-${actionId}"]`, { state: 'detached', timeout: 10_000 });

  // The entry page follows the action to the agent and back.
  await page.goto(`${server.base}/dead-letters/${entryId}`);
  await waitForHydration(page);
  await page.waitForSelector(`[data-test="dlq-action-status-${actionId}"][data-status="succeeded"]`, { timeout: 30_000 });
  await page.waitForSelector('[data-test="dlq-entry-status"][data-status="redriven"]', { timeout: 10_000 });
  const history = await page.$$eval('[data-test="dlq-history"] li', (items) => items.map((li) => li.dataset.event));
  assert.ok(history.length >= 3, `history: ${history}`);
  assert.deepEqual(approver.problems, []);
  await page.close();

  // Every step is in the audit log, in order, the approval by the approver.
  const audit = await api('GET', '/api/v1/audit?limit=500', admin);
  assert.equal(audit.status, 200);
  const steps = audit.body
    .filter((e) => e.action.startsWith('dlq.action_') && JSON.stringify(e.detail).includes(actionId))
    .sort((a, b) => a.seq - b.seq);
  assert.deepEqual(
    steps.map((e) => e.action),
    ['dlq.action_requested', 'dlq.action_approved', 'dlq.action_dispatched', 'dlq.action_succeeded'],
  );
  assert.match(steps[0].actor, new RegExp(ENGINEER));
  assert.match(steps[1].actor, new RegExp(APPROVER));
});
