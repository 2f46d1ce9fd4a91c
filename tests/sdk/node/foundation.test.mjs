// Foundation: the plain success paths through the gateway, as the official
// Node SDK sees them. Everything else builds on these.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { HELLO, MESSAGES, MODEL, getJson, makeClient, mockAttempts, newKey, scenario, startStack } from './harness.mjs';

let stack;
let client;

before(async () => {
  stack = await startStack();
  client = makeClient(stack.gateway);
});

after(async () => {
  await stack?.stop();
});

test('chat completion returns the mock content and model', async () => {
  const key = newKey();
  const completion = await client.chat.completions.create(
    { model: MODEL, messages: MESSAGES },
    { headers: scenario('ok', key) },
  );
  assert.equal(completion.model, MODEL);
  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.choices.length, 1);
  const [choice] = completion.choices;
  assert.equal(choice.message.role, 'assistant');
  assert.equal(choice.message.content, 'Hello from backstop-mock.');
  assert.equal(choice.finish_reason, 'stop');
  assert.equal(await mockAttempts(stack.mock.url, key), 1);
});

test('stream yields the content chunks in order and ends normally', async () => {
  const key = newKey();
  const stream = await client.chat.completions.create(
    { model: MODEL, messages: MESSAGES, stream: true },
    { headers: scenario('ok', key) },
  );
  const pieces = [];
  const finishes = [];
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    assert.equal(chunk.model, MODEL);
    for (const choice of chunk.choices) {
      if (choice.delta.content) pieces.push(choice.delta.content);
      if (choice.finish_reason != null) finishes.push(choice.finish_reason);
    }
  }
  assert.deepEqual(pieces, HELLO);
  assert.equal(pieces.join(''), 'Hello from backstop-mock.');
  assert.deepEqual(finishes, ['stop']);
  assert.equal(await mockAttempts(stack.mock.url, key), 1);
});

test("models.list() returns the mock's three ids", async () => {
  const direct = await getJson(`${stack.mock.url}/v1/models`);
  const expected = direct.data.map((m) => m.id);
  assert.equal(expected.length, 3);

  const ids = [];
  for await (const model of client.models.list()) ids.push(model.id);
  assert.deepEqual(ids, expected);
});

test('success carries x-request-id, x-backstop-attempts: 1, x-backstop-kind: ok', async () => {
  const key = newKey();
  const { data, response } = await client.chat.completions
    .create({ model: MODEL, messages: MESSAGES }, { headers: scenario('ok', key) })
    .withResponse();
  assert.equal(response.status, 200);
  assert.ok(response.headers.get('x-request-id'), 'x-request-id missing');
  assert.equal(response.headers.get('x-backstop-attempts'), '1');
  assert.equal(response.headers.get('x-backstop-class'), 'none');
  assert.equal(response.headers.get('x-backstop-kind'), 'ok');
  assert.equal(response.headers.get('x-should-retry'), null);
  assert.equal(data.choices[0].message.content, 'Hello from backstop-mock.');
});

test("the client's x-request-id is kept", async () => {
  const key = newKey();
  const mine = `req-${key}`;
  const { response } = await client.chat.completions
    .create({ model: MODEL, messages: MESSAGES }, { headers: { ...scenario('ok', key), 'x-request-id': mine } })
    .withResponse();
  assert.equal(response.headers.get('x-request-id'), mine);
});
