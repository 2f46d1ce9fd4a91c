// The Responses API (`client.responses.create`, streamed and not) through the
// official Node SDK with its DEFAULT settings and the gateway's default
// policies: good answers pass intact; every failure throws the SDK's error
// class for its status — or, after the first byte, the plain `APIError`
// mid-stream — with the gateway's hint in `e.message`, and the mock's
// per-key counter shows exactly how many upstream attempts it cost. Also:
// the hint tail turned off, and a `[[routes]]` fallback that answers as its
// own model. The same behaviour at the HTTP level is in tests/responses.rs.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';

import {
  HELLO,
  MODEL,
  makeClient,
  mockAttempts,
  newKey,
  scenario,
  startGateway,
  startGatewayWithConfig,
  startMock,
  startStack,
} from './harness.mjs';

const TEXT = 'Hello from backstop-mock.';
const INPUT = 'Say hello.';
const JSON_OBJECT = { format: { type: 'json_object' } };

// The gateway's hints, by kind, as the Responses API gets them.
const HINT_SERVER_ERROR = 'Retry later with backoff and keep the upstream request id; try another model if it persists';
const HINT_BAD_REQUEST =
  'Fix the request before retrying: check error.param, then validate `model`, `input`, `text.format`, ' +
  'the JSON shape and field types';
const HINT_CONTENT_FILTER = "Rephrase the prompt; avoid the specific names or topics the provider's safety filter blocks";
const HINT_EMPTY_CONTENT =
  'The response has no output text and no function call: log the full response and make the instructions ' +
  'more explicit; retrying may help';
const HINT_INVALID_JSON = 'Use text.format json_schema, or tell the model to answer with valid JSON only';
const HINT_STREAM_TRUNCATED = 'Retry the request: a cut stream cannot be resumed';

// The gateway's own words for what the upstream's 200 did not say.
const MSG_CONTENT_FILTER = "The provider's content filter blocked the output: the response: finish_reason content_filter";
const MSG_EMPTY =
  'The model returned no content and no tool calls: the response: finish_reason stop with no content and no tool calls';
const MSG_INVALID_JSON =
  "The model's output is not valid JSON: the response: content is not valid JSON: expected value at line 1 column 1";
const MSG_TRUNCATED =
  'The stream ended before the answer was complete: the stream was cut before its terminal event ' +
  '(response.completed, response.incomplete or response.failed)';

/** The bracketed tail the gateway appends to `error.message`. */
function tail(kind, attempts, hint) {
  return ` [backstop: ${kind} after ${attempts} attempt(s): ${hint}]`;
}

function create(sdk, steps, key, { stream = false, ...body } = {}) {
  return sdk.responses.create({ model: MODEL, input: INPUT, stream, ...body }, { headers: scenario(steps, key) });
}

/** The rejection of `promise`, which must be exactly an instance of `Cls`. */
async function rejection(promise, Cls) {
  let err;
  await assert.rejects(promise, (e) => {
    err = e;
    return true;
  });
  assert.equal(err.constructor, Cls, `${err.constructor.name}: ${err.message}`);
  return err;
}

/**
 * Iterate `stream` until it throws: the event types and text deltas seen
 * before, and the error (exactly `OpenAI.APIError`). No
 * `response.completed` may be seen.
 */
async function consume(stream) {
  const types = [];
  const deltas = [];
  const err = await rejection(
    (async () => {
      for await (const event of stream) {
        types.push(event.type);
        if (event.type === 'response.output_text.delta') deltas.push(event.delta);
      }
    })(),
    OpenAI.APIError,
  );
  assert.ok(!types.includes('response.completed'), JSON.stringify(types));
  return { types, deltas, err };
}

function assertMidStream(err, { klass, kind, code, message }) {
  assert.equal(err.message, message);
  assert.equal(err.status, undefined);
  const body = err.error;
  assert.equal(typeof body, 'object', `no envelope: ${err.message}`);
  assert.equal(body.message, message);
  assert.equal(body.type, 'server_error');
  assert.equal(body.code, code);
  assert.equal(body.backstop.class, klass);
  assert.equal(body.backstop.kind, kind);
  assert.equal(body.backstop.attempts, 1);
  assert.equal(body.backstop.upstream_status, 200);
}

describe('through a gateway with the default settings', () => {
  let stack;
  let client;

  before(async () => {
    stack = await startStack();
    client = makeClient(stack.gateway);
  });

  after(async () => {
    await stack?.stop();
  });

  test('a good answer passes intact', async () => {
    const key = newKey();
    const { data, response } = await create(client, 'ok', key).withResponse();
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-backstop-class'), 'none');
    assert.equal(response.headers.get('x-backstop-kind'), 'ok');
    assert.equal(response.headers.get('x-backstop-attempts'), '1');
    assert.equal(response.headers.get('x-should-retry'), null);
    assert.equal(data.object, 'response');
    assert.equal(data.status, 'completed');
    assert.equal(data.model, MODEL);
    assert.equal(data.output_text, TEXT);
    assert.deepEqual(
      data.output.map((item) => item.type),
      ['message'],
    );
    assert.deepEqual([data.usage.input_tokens, data.usage.output_tokens], [5, 3]);
    assert.equal(await mockAttempts(stack.mock.url, key), 1);
  });

  test('a good stream passes intact and ends response.completed', async () => {
    const key = newKey();
    const stream = await create(client, 'ok', key, { stream: true });
    const types = [];
    const deltas = [];
    let last;
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'response.output_text.delta') deltas.push(event.delta);
      last = event;
    }
    assert.equal(types[0], 'response.created');
    assert.equal(types.at(-1), 'response.completed');
    assert.equal(types.filter((t) => t === 'response.completed').length, 1);
    assert.ok(!types.includes('error'));
    assert.deepEqual(deltas, HELLO);
    assert.equal(deltas.join(''), TEXT);
    assert.equal(last.response.status, 'completed');
    assert.equal(last.response.model, MODEL);
    assert.equal(last.response.output[0].content[0].text, TEXT);
    assert.equal(await mockAttempts(stack.mock.url, key), 1);
  });

  test('the stream helper finalResponse() is completed', async () => {
    const key = newKey();
    const stream = client.responses.stream({ model: MODEL, input: INPUT }, { headers: scenario('ok', key) });
    const deltas = [];
    stream.on('response.output_text.delta', (event) => deltas.push(event.delta));
    const final = await stream.finalResponse();
    assert.deepEqual(deltas, HELLO);
    assert.equal(final.status, 'completed');
    assert.equal(final.output_text, TEXT);
    assert.equal(await mockAttempts(stack.mock.url, key), 1);
  });

  // Failures decided before the first byte: an HTTP status and the envelope,
  // thrown by `create` itself, streamed or not.
  const beforeFirstByte = [
    {
      steps: 'failed:server_error',
      Cls: OpenAI.InternalServerError,
      status: 502,
      klass: 'hard',
      kind: 'server_error',
      code: 'server_error',
      attempts: 3,
      message: 'mock failure server_error' + tail('server_error', 3, HINT_SERVER_ERROR),
    },
    {
      steps: 'failed:invalid_prompt',
      Cls: OpenAI.BadRequestError,
      status: 400,
      klass: 'hard',
      kind: 'bad_request',
      code: 'invalid_prompt',
      attempts: 1,
      message: 'mock failure invalid_prompt' + tail('bad_request', 1, HINT_BAD_REQUEST),
    },
    {
      steps: 'finish:content_filter',
      Cls: OpenAI.BadRequestError,
      status: 400,
      klass: 'soft',
      kind: 'content_filter',
      code: null,
      attempts: 1,
      message: MSG_CONTENT_FILTER + tail('content_filter', 1, HINT_CONTENT_FILTER),
    },
    {
      steps: 'empty',
      Cls: OpenAI.InternalServerError,
      status: 502,
      klass: 'silent',
      kind: 'empty_content',
      code: null,
      attempts: 3,
      message: MSG_EMPTY + tail('empty_content', 3, HINT_EMPTY_CONTENT),
    },
  ];
  for (const row of beforeFirstByte) {
    for (const stream of [false, true]) {
      test(`${row.steps} (${stream ? 'stream' : 'whole'}) throws ${row.Cls.name} ${row.status} after ${row.attempts} attempt(s)`, async () => {
        const key = newKey();
        const err = await rejection(create(client, row.steps, key, { stream }), row.Cls);
        assert.equal(err.status, row.status);
        assert.equal(err.message, `${row.status} ${row.message}`);
        assert.equal(err.headers.get('x-should-retry'), 'false');
        assert.equal(err.headers.get('x-backstop-class'), row.klass);
        assert.equal(err.headers.get('x-backstop-kind'), row.kind);
        assert.equal(err.headers.get('x-backstop-attempts'), String(row.attempts));
        const body = err.error;
        assert.equal(body.message, row.message);
        assert.equal(body.code, row.code);
        assert.equal(body.backstop.class, row.klass);
        assert.equal(body.backstop.kind, row.kind);
        assert.equal(body.backstop.attempts, row.attempts);
        assert.equal(body.backstop.upstream_status, 200);
        assert.equal(body.backstop.request_id, err.headers.get('x-request-id'));
        assert.ok(row.message.endsWith(tail(row.kind, row.attempts, body.backstop.hint)));
        assert.equal(await mockAttempts(stack.mock.url, key), row.attempts);
      });
    }
  }

  test('bad_json (whole, json_object) throws InternalServerError 502 after 3 attempts', async () => {
    const key = newKey();
    const err = await rejection(create(client, 'bad_json', key, { text: JSON_OBJECT }), OpenAI.InternalServerError);
    assert.equal(err.message, `502 ${MSG_INVALID_JSON}${tail('invalid_json', 3, HINT_INVALID_JSON)}`);
    assert.equal(err.error.backstop.kind, 'invalid_json');
    assert.equal(err.error.backstop.retryable, true);
    assert.equal(err.error.backstop.attempts, 3);
    assert.equal(await mockAttempts(stack.mock.url, key), 3);
  });

  test('status:503 (whole) throws InternalServerError with the hint in e.message', async () => {
    const key = newKey();
    const expectedTail =
      '[backstop: server_error after 3 attempt(s): Retry later with backoff and keep the upstream request id; ' +
      'try another model if it persists]';
    const err = await rejection(create(client, 'status:503', key), OpenAI.InternalServerError);
    assert.ok(err.message.includes(expectedTail), err.message);
    assert.equal(err.message, `503 mock error 503 ${expectedTail}`);
    assert.equal(err.status, 503);
    assert.equal(err.error.code, 'service_unavailable');
    assert.equal(err.error.backstop.upstream_status, 503);
    assert.equal(await mockAttempts(stack.mock.url, key), 3);
  });

  // Failures after the first byte: the stream ends with `event: error`, which
  // the SDK throws mid-iteration as the plain APIError, after the pieces that
  // had arrived.
  test('bad_json (stream, json_object) throws APIError mid-stream, kind invalid_json', async () => {
    const key = newKey();
    const { types, deltas, err } = await consume(
      await create(client, 'bad_json', key, { stream: true, text: JSON_OBJECT }),
    );
    assert.deepEqual(deltas, ['Sure! ', '{"answ', 'er": 4']);
    assert.equal(types.at(-1), 'response.output_item.done');
    assertMidStream(err, {
      klass: 'silent',
      kind: 'invalid_json',
      code: null,
      message: MSG_INVALID_JSON + tail('invalid_json', 1, HINT_INVALID_JSON),
    });
    assert.equal(await mockAttempts(stack.mock.url, key), 1);
  });

  test('cut:2 (stream) throws APIError mid-stream, kind stream_truncated, after 2 pieces', async () => {
    const key = newKey();
    const { types, deltas, err } = await consume(await create(client, 'cut:2', key, { stream: true }));
    assert.deepEqual(deltas, HELLO.slice(0, 2));
    assert.equal(types.at(-1), 'response.output_text.delta');
    assertMidStream(err, {
      klass: 'silent',
      kind: 'stream_truncated',
      code: null,
      message: MSG_TRUNCATED + tail('stream_truncated', 1, HINT_STREAM_TRUNCATED),
    });
    assert.equal(await mockAttempts(stack.mock.url, key), 1);
  });

  test('error_after:1 (stream) throws APIError mid-stream, kind server_error, after 1 piece', async () => {
    const key = newKey();
    const { types, deltas, err } = await consume(await create(client, 'error_after:1', key, { stream: true }));
    assert.deepEqual(deltas, HELLO.slice(0, 1));
    assert.equal(types.at(-1), 'response.output_text.delta');
    assertMidStream(err, {
      klass: 'hard',
      kind: 'server_error',
      code: 'server_error',
      message: 'mock in-band error' + tail('server_error', 1, HINT_SERVER_ERROR),
    });
    assert.equal(await mockAttempts(stack.mock.url, key), 1);
  });
});

describe('through a gateway with envelope.hint_in_message = false', () => {
  let stack;
  let client;

  before(async () => {
    stack = await startStack({ BACKSTOP_ENVELOPE__HINT_IN_MESSAGE: 'false' });
    client = makeClient(stack.gateway);
  });

  after(async () => {
    await stack?.stop();
  });

  test('status:503 (whole): e.message has no tail, the hint stays in the envelope', async () => {
    const key = newKey();
    const err = await rejection(create(client, 'status:503', key), OpenAI.InternalServerError);
    assert.equal(err.message, '503 mock error 503');
    assert.equal(err.error.message, 'mock error 503');
    assert.equal(err.error.backstop.hint, HINT_SERVER_ERROR);
    assert.equal(err.error.backstop.attempts, 3);
    assert.equal(await mockAttempts(stack.mock.url, key), 3);
  });

  test('cut:2 (stream): the mid-stream APIError has no tail', async () => {
    const key = newKey();
    const { deltas, err } = await consume(await create(client, 'cut:2', key, { stream: true }));
    assert.deepEqual(deltas, HELLO.slice(0, 2));
    assert.equal(err.message, MSG_TRUNCATED);
    assert.equal(err.error.backstop.kind, 'stream_truncated');
    assert.equal(err.error.backstop.hint, HINT_STREAM_TRUNCATED);
    assert.equal(await mockAttempts(stack.mock.url, key), 1);
  });
});

// A route falls over from a mock that always answers 503 to a healthy one,
// whose target renames the model: two attempts on the failing default (the
// route's default `attempts_per_target = 2`), then one on the backup.
// Circuit thresholds out of reach, so every call tries the failing default
// first and the attempt counts stay exact.
describe('through a route that falls over to model gpt-fallback', () => {
  const FALLBACK_MODEL = 'gpt-fallback';
  let primary;
  let backup;
  let gateway;
  let client;

  before(async () => {
    primary = await startMock('--mix', 'status:503=1');
    backup = await startMock();
    gateway = await startGatewayWithConfig(`
[upstream]
url = "${primary.url}/v1"

[upstreams.backup]
url = "${backup.url}/v1"

[[routes]]
name = "responses"
models = ["${MODEL}"]
targets = [
  { upstream = "default", model = "${MODEL}" },
  { upstream = "backup", model = "${FALLBACK_MODEL}" },
]

[circuit]
consecutive_failures = 10000
window = 10000
min_requests = 10000
`);
    client = makeClient(gateway);
  });

  after(async () => {
    await gateway?.stop();
    await backup?.stop();
    await primary?.stop();
  });

  async function assertTwoAttemptsThenOne(key) {
    assert.equal(await mockAttempts(primary.url, key), 2);
    assert.equal(await mockAttempts(backup.url, key), 1);
  }

  test('whole: response.model is gpt-fallback', async () => {
    const key = newKey();
    const { data, response } = await client.responses
      .create({ model: MODEL, input: INPUT }, { headers: { 'x-mock-key': key } })
      .withResponse();
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-backstop-target'), `backup/${FALLBACK_MODEL}`);
    assert.equal(response.headers.get('x-backstop-attempts'), '3');
    assert.equal(response.headers.get('x-backstop-kind'), 'ok');
    assert.equal(data.model, FALLBACK_MODEL);
    assert.equal(data.status, 'completed');
    assert.equal(data.output_text, TEXT);
    await assertTwoAttemptsThenOne(key);
  });

  test('stream: the completed response.model is gpt-fallback', async () => {
    const key = newKey();
    const { data: stream, response } = await client.responses
      .create({ model: MODEL, input: INPUT, stream: true }, { headers: { 'x-mock-key': key } })
      .withResponse();
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-backstop-target'), `backup/${FALLBACK_MODEL}`);
    assert.equal(response.headers.get('x-backstop-attempts'), '3');
    const deltas = [];
    let last;
    for await (const event of stream) {
      if (event.type === 'response.output_text.delta') deltas.push(event.delta);
      last = event;
    }
    assert.equal(last.type, 'response.completed');
    assert.equal(last.response.model, FALLBACK_MODEL);
    assert.equal(last.response.status, 'completed');
    assert.deepEqual(deltas, HELLO);
    await assertTwoAttemptsThenOne(key);
  });
});
