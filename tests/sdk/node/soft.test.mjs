// Soft and silent failures through the official Node SDK, with the
// gateway's default `[inspect]` policies: content_filter=fail, length=pass,
// empty_content=retry, stream_truncated=fail.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import OpenAI from 'openai';

import { HELLO, MESSAGES, MODEL, makeClient, mockAttempts, newKey, scenario, startStack } from './harness.mjs';

let stack;
let client;

before(async () => {
  stack = await startStack();
  client = makeClient(stack.gateway);
});

after(async () => {
  await stack?.stop();
});

test('finish:content_filter fails as 400 BadRequestError naming the content filter', async () => {
  const key = newKey();
  let err;
  await assert.rejects(
    client.chat.completions.create(
      { model: MODEL, messages: MESSAGES },
      { headers: scenario('finish:content_filter', key) },
    ),
    (e) => {
      err = e;
      return true;
    },
  );
  assert.equal(err.constructor, OpenAI.BadRequestError, `${err.constructor.name}: ${err.message}`);
  assert.equal(err.status, 400);
  assert.equal(err.headers.get('x-should-retry'), 'false');
  assert.equal(err.headers.get('x-backstop-class'), 'soft');
  assert.equal(err.headers.get('x-backstop-kind'), 'content_filter');
  const body = err.error;
  assert.match(body.message, /content[ _-]?filter/i);
  assert.equal(body.type, 'invalid_request_error');
  assert.equal(body.backstop.class, 'soft');
  assert.equal(body.backstop.kind, 'content_filter');
  assert.equal(body.backstop.retryable, false);
  assert.equal(body.backstop.attempts, 1);
  assert.equal(body.backstop.upstream_status, 200);
  assert.equal(await mockAttempts(stack.mock.url, key), 1);
});

test('a stream cut after 2 chunks throws instead of returning partial text', async () => {
  const key = newKey();
  const stream = await client.chat.completions.create(
    { model: MODEL, messages: MESSAGES, stream: true },
    { headers: scenario('cut:2', key) },
  );
  const pieces = [];
  let err;
  await assert.rejects(
    (async () => {
      for await (const chunk of stream) {
        for (const choice of chunk.choices) {
          if (choice.delta.content) pieces.push(choice.delta.content);
        }
      }
    })(),
    (e) => {
      err = e;
      return true;
    },
  );
  // Mid-stream the SDK throws the plain APIError carrying the envelope.
  assert.equal(err.constructor, OpenAI.APIError, `${err.constructor.name}: ${err.message}`);
  assert.deepEqual(pieces, HELLO.slice(0, 2));
  const body = err.error;
  assert.equal(typeof body, 'object', `no envelope: ${err.message}`);
  assert.equal(err.message, body.message);
  assert.equal(body.type, 'server_error');
  assert.equal(body.backstop.class, 'silent');
  assert.equal(body.backstop.kind, 'stream_truncated');
  assert.equal(body.backstop.attempts, 1);
  assert.equal(await mockAttempts(stack.mock.url, key), 1);
});

test('finish:length passes with x-backstop-kind: length', async () => {
  const key = newKey();
  const { data, response } = await client.chat.completions
    .create({ model: MODEL, messages: MESSAGES }, { headers: scenario('finish:length', key) })
    .withResponse();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('x-backstop-kind'), 'length');
  assert.equal(response.headers.get('x-backstop-class'), 'soft');
  assert.equal(response.headers.get('x-backstop-attempts'), '1');
  assert.equal(response.headers.get('x-should-retry'), null);
  assert.equal(data.choices[0].message.content, HELLO.join(''));
  assert.equal(data.choices[0].finish_reason, 'length');
  assert.equal(await mockAttempts(stack.mock.url, key), 1);
});

test('finish:tool_calls with null content passes untouched', async () => {
  const key = newKey();
  const { data, response } = await client.chat.completions
    .create({ model: MODEL, messages: MESSAGES }, { headers: scenario('finish:tool_calls', key) })
    .withResponse();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('x-backstop-kind'), 'ok');
  assert.equal(response.headers.get('x-backstop-class'), 'none');
  const [choice] = data.choices;
  assert.equal(choice.finish_reason, 'tool_calls');
  assert.equal(choice.message.content, null);
  assert.deepEqual(choice.message.tool_calls, [
    { id: 'call_mock_1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}' } },
  ]);
  assert.equal(await mockAttempts(stack.mock.url, key), 1);
});

test('empty then ok is retried and succeeds after 2 attempts', async () => {
  const key = newKey();
  const { data, response } = await client.chat.completions
    .create({ model: MODEL, messages: MESSAGES }, { headers: scenario('empty,ok', key) })
    .withResponse();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('x-backstop-attempts'), '2');
  assert.equal(response.headers.get('x-backstop-kind'), 'ok');
  assert.equal(data.choices[0].message.content, HELLO.join(''));
  assert.equal(await mockAttempts(stack.mock.url, key), 2);
});
