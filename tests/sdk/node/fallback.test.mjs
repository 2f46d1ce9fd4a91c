// Fallback through a route, as the official Node SDK (default settings)
// sees it: two mocks, the primary always answering 503 and a healthy backup;
// a `[[routes]]` rule in a config file sends `gpt-fallback*` first to the
// primary as `primary-model`, then to the backup as `fallback-model`. With
// the route's default `attempts_per_target = 2`, every call spends exactly
// two attempts on the primary (a lone 5xx is retried there once) and then
// succeeds on the backup, and says so in `x-backstop-target` /
// `x-backstop-attempts` (3) and in the answer's `model`.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import OpenAI from 'openai';

import {
  HELLO,
  MESSAGES,
  getJson,
  makeClient,
  mockAttempts,
  newKey,
  startGatewayWithConfig,
  startMock,
} from './harness.mjs';

const ROUTED_MODEL = 'gpt-fallback';
const PRIMARY_MODEL = 'primary-model';
const BACKUP_MODEL = 'fallback-model';
const BACKUP_TARGET = `backup/${BACKUP_MODEL}`;
const CONTENT = HELLO.join('');

/**
 * The route under test. The circuit thresholds are raised out of reach: with
 * the defaults the always-failing primary would be taken out of rotation
 * after 5 failures, and later calls would no longer try it.
 */
function fallbackConfig(primaryUrl, backupUrl) {
  return `
[upstream]
url = "${primaryUrl}/v1"

[upstreams.backup]
url = "${backupUrl}/v1"

[[routes]]
name = "chat"
models = ["gpt-fallback*"]
targets = [
  { upstream = "default", model = "${PRIMARY_MODEL}" },
  { upstream = "backup", model = "${BACKUP_MODEL}" },
]

[circuit]
consecutive_failures = 10000
window = 10000
min_requests = 10000
`;
}

let primary;
let backup;
let gateway;
let client;

before(async () => {
  primary = await startMock('--mix', 'status:503=1');
  backup = await startMock();
  gateway = await startGatewayWithConfig(fallbackConfig(primary.url, backup.url));
  client = makeClient(gateway);
});

after(async () => {
  await gateway?.stop();
  await backup?.stop();
  await primary?.stop();
});

/** `/mock/stats` total of each mock: `[primary, backup]`. */
async function totals() {
  const [p, b] = await Promise.all([getJson(`${primary.url}/mock/stats`), getJson(`${backup.url}/mock/stats`)]);
  return [p.total, b.total];
}

async function assertTwoAttemptsThenOne(key) {
  assert.equal(await mockAttempts(primary.url, key), 2);
  assert.equal(await mockAttempts(backup.url, key), 1);
}

test('the primary mock always answers 503', async () => {
  const direct = new OpenAI({ baseURL: `${primary.url}/v1`, apiKey: 'sk-test-backstop', maxRetries: 0 });
  await assert.rejects(direct.chat.completions.create({ model: PRIMARY_MODEL, messages: MESSAGES }), (e) => {
    assert.equal(e.constructor, OpenAI.InternalServerError, `${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, 503);
    return true;
  });
});

test('chat completion falls over to the backup', async () => {
  const key = newKey();
  const completion = await client.chat.completions.create(
    { model: ROUTED_MODEL, messages: MESSAGES },
    { headers: { 'x-mock-key': key } },
  );
  assert.equal(completion.model, BACKUP_MODEL);
  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.choices.length, 1);
  assert.equal(completion.choices[0].message.content, CONTENT);
  assert.equal(completion.choices[0].finish_reason, 'stop');
  await assertTwoAttemptsThenOne(key);
});

test('raw headers name the backup target and three attempts', async () => {
  const key = newKey();
  const { data, response } = await client.chat.completions
    .create({ model: ROUTED_MODEL, messages: MESSAGES }, { headers: { 'x-mock-key': key } })
    .withResponse();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('x-backstop-target'), BACKUP_TARGET);
  assert.equal(response.headers.get('x-backstop-attempts'), '3');
  assert.equal(response.headers.get('x-backstop-class'), 'none');
  assert.equal(response.headers.get('x-backstop-kind'), 'ok');
  assert.equal(response.headers.get('x-should-retry'), null);
  assert.equal(data.model, BACKUP_MODEL);
  assert.equal(data.choices[0].message.content, CONTENT);
  await assertTwoAttemptsThenOne(key);
});

test('stream falls over to the backup', async () => {
  const key = newKey();
  const { data: stream, response } = await client.chat.completions
    .create({ model: ROUTED_MODEL, messages: MESSAGES, stream: true }, { headers: { 'x-mock-key': key } })
    .withResponse();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('x-backstop-target'), BACKUP_TARGET);
  assert.equal(response.headers.get('x-backstop-attempts'), '3');
  const pieces = [];
  const finishes = [];
  const models = new Set();
  let chunks = 0;
  for await (const chunk of stream) {
    chunks += 1;
    assert.equal(chunk.object, 'chat.completion.chunk');
    models.add(chunk.model);
    for (const choice of chunk.choices) {
      if (choice.delta.content) pieces.push(choice.delta.content);
      if (choice.finish_reason != null) finishes.push(choice.finish_reason);
    }
  }
  assert.ok(chunks > 0, 'no chunks');
  assert.deepEqual([...models], [BACKUP_MODEL]);
  assert.deepEqual(pieces, HELLO);
  assert.equal(pieces.join(''), CONTENT);
  assert.deepEqual(finishes, ['stop']);
  await assertTwoAttemptsThenOne(key);
});

test('each SDK call costs the primary exactly two attempts', async () => {
  const calls = 3;
  const [p0, b0] = await totals();
  for (let n = 0; n < calls; n += 1) {
    if (n === 1) {
      const stream = await client.chat.completions.create({ model: ROUTED_MODEL, messages: MESSAGES, stream: true });
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
      assert.equal(text, CONTENT);
    } else {
      const completion = await client.chat.completions.create({ model: ROUTED_MODEL, messages: MESSAGES });
      assert.equal(completion.model, BACKUP_MODEL);
    }
    assert.deepEqual(await totals(), [p0 + 2 * (n + 1), b0 + n + 1]);
  }
});
