// The reliability report of the RAG service, from a real server fed real
// telemetry through the agent protocol: its HTML passes an HTML validator
// (html-validate's recommended rules), it has the eleven sections (the
// seed's ten and the reliability goals), and the Markdown download is
// offered as a file.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { HtmlValidate } from 'html-validate';
import { callApi, ADMIN_PASSWORD, startServer } from '../harness.mjs';

let server;
let admin;
const api = (...args) => callApi(server, ...args);

before(async () => {
  server = await startServer();
  admin = (await api('POST', '/api/v1/auth/login', null, { username: 'admin', password: ADMIN_PASSWORD })).body.token;
  assert.equal((await api('POST', '/api/v1/services', admin, { name: 'rag-answer', environment: 'prod', owner: 'e2e' })).status, 201);
  // Medium tier: publishes without a second person's approval.
  const yaml = readFileSync(new URL('../../examples/policies/rag-answer.yaml', import.meta.url), 'utf8')
    .replace('risk_tier: high', 'risk_tier: medium');
  assert.equal((await api('PUT', '/api/v1/services/rag-answer/prod/draft', admin, yaml, 'application/yaml')).status, 200);
  assert.equal((await api('POST', '/api/v1/services/rag-answer/prod/publish', admin, { message: 'v1' })).body.version, 1);
  const agent = (await api('POST', '/api/v1/tokens', admin, { service: 'rag-answer', environment: 'prod' })).body.token;
  const now = Date.now();
  const buckets = Array(16).fill(0);
  buckets[5] = 90;
  buckets[9] = 10;
  const batch = {
    instance_id: 'pod-1', sequence: 1, window_start_ms: now - 1000, window_end_ms: now, policy_version: 1,
    dependencies: {
      reranker: {
        calls: 100, successes: 80, failures: { timeout: 20 }, timeouts: 20, breaker_rejections: 5,
        fallbacks: { 'reranker/timeout': 20 }, degraded: { degraded: 20 }, latency_buckets: buckets,
        latency_sum_ms: 4000, breaker: 'open',
      },
    },
  };
  const r = await api('POST', '/api/v1/agent/telemetry', agent, batch);
  assert.equal(r.status, 200, JSON.stringify(r.body));
});

after(async () => {
  await server?.stop();
});

test('the report is valid HTML with all eleven sections and real figures', async () => {
  const res = await fetch(`${server.base}/api/v1/services/rag-answer/prod/report`, {
    headers: { authorization: `Bearer ${admin}` },
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/html/);
  const html = await res.text();
  const validator = new HtmlValidate({ extends: ['html-validate:recommended'] });
  const report = await validator.validateString(html);
  const problems = report.results.flatMap((r) => r.messages.map((m) => `${m.line}:${m.column} ${m.ruleId} ${m.message}`));
  assert.ok(report.valid, `the report's HTML is not valid:\n${problems.join('\n')}`);
  assert.equal((html.match(/<section id=/g) ?? []).length, 11);
  for (const title of ['Timeout budget', 'Retry policy', 'Circuit breaker policy', 'Fallback matrix', 'Bulkhead design',
    'Queue and DLQ design', 'Idempotency strategy', 'Chaos test results', 'Metrics and alerts', 'Runbook', 'Reliability goals and error budgets']) {
    assert.ok(html.includes(title), `no ${title} section`);
  }
  assert.ok(html.includes('<td>reranker</td><td>100</td><td>20.00%</td>'), 'the reranker figures are in the metrics table');
});

test('the Markdown report downloads as a file', async () => {
  const res = await fetch(`${server.base}/api/v1/services/rag-answer/prod/report?format=markdown&download=true`, {
    headers: { authorization: `Bearer ${admin}` },
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/markdown/);
  assert.equal(res.headers.get('content-disposition'), 'attachment; filename="reliability-rag-answer-prod.md"');
  const md = await res.text();
  assert.ok(md.startsWith('# Reliability report: rag-answer (prod)'));
  assert.equal((md.match(/^## \d+\. /gm) ?? []).length, 11);
});
