// Two `ballast serve` processes on one PostgreSQL: a publish on one reaches an
// agent stream held on the other within a second (LISTEN/NOTIFY fan-out).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { callApi as api, ADMIN_PASSWORD, startServer } from '../harness.mjs';

const PG = process.env.BALLAST_TEST_PG_URL;
const required = process.env.BALLAST_REQUIRE_PG === '1';
const skip = !PG && !required ? 'BALLAST_TEST_PG_URL is not set (scripts/test sets it)' : false;

let a;
let b;
let dbName;

function psql(sql) {
  const r = spawnSync('psql', [PG, '-v', 'ON_ERROR_STOP=1', '-c', sql], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`);
}

before(async () => {
  if (skip) return;
  assert.ok(PG, 'BALLAST_REQUIRE_PG=1 but BALLAST_TEST_PG_URL is not set');
  dbName = `ballast_e2e_${randomBytes(4).toString('hex')}`;
  psql(`CREATE DATABASE ${dbName}`);
  const env = {
    BALLAST_DATABASE_URL: PG.replace(/\/[^/]*$/, `/${dbName}`),
    BALLAST_JWT_SECRET: randomBytes(32).toString('hex'),
  };
  // Started together, as replicas are: they race to migrate and bootstrap.
  [a, b] = await Promise.all([startServer({ env }), startServer({ env })]);
});

after(async () => {
  await a?.stop();
  await b?.stop();
  if (dbName) psql(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
});


/** Reads SSE events from a fetch body until one carries `version`. */
async function untilVersion(reader, state, version) {
  const decoder = new TextDecoder();
  for (;;) {
    const end = state.buffer.indexOf('\n\n');
    if (end >= 0) {
      const event = state.buffer.slice(0, end);
      state.buffer = state.buffer.slice(end + 2);
      if (event.split('\n').includes('event: policy')) {
        const data = event.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('');
        const envelope = JSON.parse(data);
        if (envelope.version === version) return envelope;
      }
      continue;
    }
    const { value, done } = await reader.read();
    assert.equal(done, false, 'the stream ended');
    state.buffer += decoder.decode(value, { stream: true });
  }
}

test('a publish on one replica reaches a stream on the other within a second', { skip }, async () => {
  const login = await fetch(`${a.base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }),
  });
  assert.equal(login.status, 200);
  const { token } = await login.json();
  // The session works on either replica: they share the database and the key.
  assert.equal((await api(b, 'GET', '/api/v1/me', token)).body.role, 'admin');

  assert.equal((await api(a, 'POST', '/api/v1/services', token, { name: 'rag-answer', environment: 'prod', owner: 'e2e' })).status, 201);
  const agent = (await api(a, 'POST', '/api/v1/tokens', token, { service: 'rag-answer', environment: 'prod' })).body.token;
  const yaml = readFileSync(new URL('../../examples/policies/rag-answer.yaml', import.meta.url), 'utf8')
    .replace('risk_tier: high', 'risk_tier: medium');
  const publishYaml = async (text, message) => {
    const draft = await api(a, 'PUT', '/api/v1/services/rag-answer/prod/draft', token, text, 'application/yaml');
    assert.equal(draft.status, 200, JSON.stringify(draft.body));
    return api(a, 'POST', '/api/v1/services/rag-answer/prod/publish', token, { message });
  };
  assert.equal((await publishYaml(yaml, 'v1')).body.version, 1);

  const stream = await fetch(`${b.base}/api/v1/agent/stream?instance_id=e2e-1`, {
    headers: { authorization: `Bearer ${agent}` },
  });
  assert.equal(stream.status, 200);
  const reader = stream.body.getReader();
  const state = { buffer: '' };
  await untilVersion(reader, state, 1);

  const started = performance.now();
  const published = await publishYaml(yaml.replace('owner: knowledge-platform', 'owner: replica-test'), 'v2');
  assert.equal(published.body.version, 2);
  const envelope = await untilVersion(reader, state, 2);
  const elapsed = performance.now() - started;
  assert.equal(envelope.policy.service.owner, 'replica-test');
  assert.ok(elapsed < 1000, `took ${elapsed.toFixed(0)} ms`);
  console.log(`cross-process propagation: ${elapsed.toFixed(1)} ms (publish call included)`);
  await reader.cancel();
});
