// The editor's YAML view goes through the REST API: it shows the document
// as YAML, the server checks edits as they are typed (a text that is not a
// policy names the field it blames), and "Save as draft" saves the text
// through PUT .../draft, after which the form shows it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { callApi, ADMIN_PASSWORD, launchBrowser, startServer, waitForHydration } from '../harness.mjs';

let server;
let chrome;
let admin;

const api = (...args) => callApi(server, ...args);

before(async () => {
  server = await startServer();
  admin = (await api('POST', '/api/v1/auth/login', null, { username: 'admin', password: ADMIN_PASSWORD })).body.token;
  assert.equal((await api('POST', '/api/v1/services', admin, { name: 'rag-answer', environment: 'prod', owner: 'e2e' })).status, 201);
  const yaml = readFileSync(new URL('../../examples/policies/rag-answer.yaml', import.meta.url), 'utf8');
  assert.equal((await api('PUT', '/api/v1/services/rag-answer/prod/draft', admin, yaml, 'application/yaml')).status, 200);
  chrome = await launchBrowser();
});

after(async () => {
  await chrome?.close();
  await server?.stop();
});

test('the YAML view checks edits on the server and saves them as the draft', async () => {
  const page = await chrome.browser.newPage();
  await page.goto(`${server.base}/login`);
  await waitForHydration(page);
  await page.fill('[data-test="login-username"]', 'admin');
  await page.fill('[data-test="login-password"]', ADMIN_PASSWORD);
  await page.click('[data-test="login-submit"]');
  await page.waitForSelector('[data-test="nav-services"]');
  await page.goto(`${server.base}/services/rag-answer/prod`);
  await waitForHydration(page);
  await page.waitForSelector('[data-test="editor-service-owner"]', { timeout: 20_000 });

  await page.click('[data-test="mode-yaml"]');
  const text = await page.inputValue('[data-test="yaml-editor"]');
  assert.match(text, /^service:\n  name: rag-answer\n/);

  // Not a policy: the server's message, naming the field.
  await page.fill('[data-test="yaml-editor"]', text.replace(/max_attempts: \d+/, 'max_attempts: many'));
  await page.waitForSelector('[data-test="yaml-error"]');
  assert.match(await page.getAttribute('[data-test="yaml-error"]', 'data-path') ?? '', /max_attempts/);

  // A policy: checked, then saved as the draft; the form shows it.
  const edited = text.replace(/owner: \S+/, 'owner: yaml-team');
  await page.fill('[data-test="yaml-editor"]', edited);
  await page.waitForSelector('[data-test="yaml-checked"]');
  await page.click('[data-test="yaml-apply"]');
  await page.waitForSelector('[data-test="yaml-applied"]');
  const draft = await api('GET', '/api/v1/services/rag-answer/prod/draft', admin);
  assert.equal(draft.body.policy.service.owner, 'yaml-team');
  await page.click('[data-test="mode-form"]');
  assert.equal(await page.inputValue('[data-test="editor-service-owner"]'), 'yaml-team');
  await page.close();
});
