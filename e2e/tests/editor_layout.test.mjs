// The policy editor at a laptop's width: no table of the form is wider than
// the card it sits in (nothing cut off at the right), the values in the
// tables' inputs fit their boxes, every section has a form and a link in
// the section index, and the fallback matrix also shows as a grid.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { callApi, ADMIN_PASSWORD, launchBrowser, startServer, waitForHydration } from '../harness.mjs';

let server;
let chrome;

const api = (...args) => callApi(server, ...args);

before(async () => {
  server = await startServer();
  const admin = (await api('POST', '/api/v1/auth/login', null, { username: 'admin', password: ADMIN_PASSWORD })).body.token;
  // The case-review agent uses every section of the policy.
  assert.equal((await api('POST', '/api/v1/services', admin, { name: 'case-review-agent', environment: 'prod', owner: 'e2e' })).status, 201);
  const yaml = readFileSync(new URL('../../examples/policies/case-review-agent.yaml', import.meta.url), 'utf8');
  assert.equal((await api('PUT', '/api/v1/services/case-review-agent/prod/draft', admin, yaml, 'application/yaml')).status, 200);
  chrome = await launchBrowser();
});

after(async () => {
  await chrome?.close();
  await server?.stop();
});

/** Every editor table that is wider than its card, or than the box that
 *  scrolls it, with its width and the card's. */
function overflowingTables() {
  return [...document.querySelectorAll('[data-test^="editor-section-"] table')]
    .map((table) => {
      const card = table.closest('.panel');
      const scroller = table.closest('.table-scroll') ?? card;
      const t = table.getBoundingClientRect();
      const c = card.getBoundingClientRect();
      return {
        table: table.dataset.test ?? table.closest('[data-test^="editor-section-"]').dataset.test,
        width: Math.round(t.width),
        card: Math.round(c.width),
        over: t.right > c.right + 0.5 || t.left < c.left - 0.5 || table.scrollWidth > scroller.clientWidth + 0.5,
      };
    })
    .filter((t) => t.over);
}

for (const width of [1280, 1440]) test(`at ${width} px no editor table overflows its card, and every section has a form`, async () => {
  const page = await chrome.browser.newPage({ viewport: { width, height: 900 } });
  await page.goto(`${server.base}/login`);
  await waitForHydration(page);
  await page.fill('[data-test="login-username"]', 'admin');
  await page.fill('[data-test="login-password"]', ADMIN_PASSWORD);
  await page.click('[data-test="login-submit"]');
  await page.waitForSelector('[data-test="nav-services"]');
  await page.goto(`${server.base}/services/case-review-agent/prod`);
  await waitForHydration(page);
  await page.waitForSelector('[data-test="editor-section-invariants"]', { timeout: 20_000 });

  // Every section of the document has a form and a link in the index.
  const sections = await page.$$eval('[data-test^="editor-section-"]', (s) => s.map((e) => e.dataset.test.replace('editor-section-', '')));
  for (const id of ['service', 'goals', 'timeouts', 'retry', 'retry_budget', 'breakers', 'fallbacks', 'models', 'bulkheads',
    'limits', 'admission', 'output_repair', 'retrieval', 'agent_nodes', 'cache', 'idempotency', 'invariants']) {
    assert.ok(sections.includes(id), `no form for ${id}`);
    assert.ok(await page.$(`[data-test="section-link-${id}"]`), `no index link for ${id}`);
  }
  const tables = await page.$$eval('[data-test^="editor-section-"] table', (t) => t.length);
  assert.ok(tables >= 15, `only ${tables} tables`);

  assert.deepEqual(await page.evaluate(overflowingTables), []);

  // Names and numbers in the tables' inputs are not cut short (sentences
  // may scroll inside their field).
  const clipped = await page.$$eval('[data-test^="editor-section-"] table input[type="text"]', (inputs) =>
    inputs
      .filter((i) => /^\S{1,24}$/.test(i.value) && i.scrollWidth > i.clientWidth + 1)
      .map((i) => `${i.dataset.test}=${i.value}`));
  assert.deepEqual(clipped, []);

  // The fallback matrix as a grid of components x failure types.
  await page.click('[data-test="fallbacks-view-grid"]');
  await page.waitForSelector('[data-test="fallback-grid"]');
  const headers = await page.$$eval('[data-test="fallback-grid"] thead th', (h) => h.length);
  assert.equal(headers, 8);
  assert.deepEqual(await page.evaluate(overflowingTables), []);

  // The index takes the keyboard to a section.
  await page.click('[data-test="section-link-invariants"]');
  await page.waitForFunction(() => {
    const r = document.querySelector('[data-test="editor-section-invariants"]').getBoundingClientRect();
    return r.top < window.innerHeight && r.bottom > 0;
  });
  if (process.env.SCREENSHOT_DIR) {
    await page.click('[data-test="section-link-fallbacks"]');
    await page.screenshot({ path: `${process.env.SCREENSHOT_DIR}/editor-${width}.png` });
  }
  await page.close();
});
