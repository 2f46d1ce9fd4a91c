// The Vercel AI SDK (`ai` + `@ai-sdk/openai`) through the gateway:
// `createOpenAI({ baseURL: <gateway>/v1 })`, whose `openai(model)` speaks the
// Responses API (the gateway's `route` metric label proves it), answers
// through `generateText` and `streamText` intact, and a scripted failure
// surfaces as an `APICallError` (a stream cut after its first bytes: as the
// AI SDK's own stream-error object, read from the gateway's closing `error`
// event) whose message carries the gateway's `[backstop: ...]` tail.
//
// Unlike the official SDKs, the AI SDK retries by status alone (408, 409,
// 429, 5xx) and ignores `x-should-retry: false`: with its default
// `maxRetries: 2` one 503 costs 3 × 3 = 9 upstream attempts and ~6 s of its
// own backoff. Calls that expect a retryable failure pass `maxRetries: 0`.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { createOpenAI } from '@ai-sdk/openai';
import { APICallError, TypeValidationError, generateText, streamText } from 'ai';

import { HELLO, MODEL, mockAttempts, newKey, scenario, startStack } from './harness.mjs';

const TEXT = 'Hello from backstop-mock.';
const PROMPT = 'Say hello.';
const ROUTE = '/v1/responses';

const HINT_SERVER_ERROR = 'Retry later with backoff and keep the upstream request id; try another model if it persists';
const HINT_BAD_REQUEST =
  'Fix the request before retrying: check error.param, then validate `model`, `input`, `text.format`, ' +
  'the JSON shape and field types';
const HINT_STREAM_TRUNCATED = 'Retry the request: a cut stream cannot be resumed';
const MSG_TRUNCATED =
  'The stream ended before the answer was complete: the stream was cut before its terminal event ' +
  '(response.completed, response.incomplete or response.failed)';

function tail(kind, attempts, hint) {
  return ` [backstop: ${kind} after ${attempts} attempt(s): ${hint}]`;
}

let stack;
let openai;

before(async () => {
  stack = await startStack();
  openai = createOpenAI({ baseURL: `${stack.gateway.url}/v1`, apiKey: 'test' });
});

after(async () => {
  await stack?.stop();
});

/** `backstop_requests_total` for `route` and `kind` (model gpt-4o-mini), from the gateway's /metrics. */
async function requests(route, klass, kind) {
  const text = await (await fetch(`${stack.gateway.url}/metrics`)).text();
  const labels = `{class="${klass}",kind="${kind}",model="${MODEL}",route="${route}"}`;
  const line = text.split('\n').find((l) => l.startsWith(`backstop_requests_total${labels} `));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

/** Runs `call` and returns how much the ok counter of each route grew. */
async function okDelta(call) {
  const before = [await requests(ROUTE, 'none', 'ok'), await requests('/v1/chat/completions', 'none', 'ok')];
  const result = await call();
  const after = [await requests(ROUTE, 'none', 'ok'), await requests('/v1/chat/completions', 'none', 'ok')];
  return { result, responses: after[0] - before[0], chat: after[1] - before[1] };
}

/** The rejection of `promise`, which must be an AI SDK `APICallError`. */
async function apiCallError(promise) {
  let err;
  await assert.rejects(promise, (e) => {
    err = e;
    return true;
  });
  assert.ok(APICallError.isInstance(err), `${err?.constructor?.name}: ${err?.message}`);
  return err;
}

test('generateText answers intact, over the Responses API', async () => {
  const key = newKey();
  const { result, responses, chat } = await okDelta(() =>
    generateText({ model: openai(MODEL), prompt: PROMPT, headers: scenario('ok', key) }),
  );
  assert.deepEqual({ responses, chat }, { responses: 1, chat: 0 });
  assert.equal(result.text, TEXT);
  assert.equal(result.finishReason, 'stop');
  assert.equal(result.response.modelId, MODEL);
  assert.equal(result.response.headers['x-backstop-kind'], 'ok');
  assert.equal(result.response.headers['x-backstop-attempts'], '1');
  assert.deepEqual([result.usage.inputTokens, result.usage.outputTokens], [5, 3]);
  assert.equal(await mockAttempts(stack.mock.url, key), 1);
});

test('streamText answers intact, over the Responses API', async () => {
  const key = newKey();
  const errors = [];
  const { result, responses, chat } = await okDelta(async () => {
    const stream = streamText({
      model: openai(MODEL),
      prompt: PROMPT,
      headers: scenario('ok', key),
      onError: ({ error }) => errors.push(error),
    });
    const pieces = [];
    for await (const piece of stream.textStream) pieces.push(piece);
    return { pieces, text: await stream.text, finishReason: await stream.finishReason };
  });
  assert.deepEqual({ responses, chat }, { responses: 1, chat: 0 });
  assert.deepEqual(errors, []);
  assert.deepEqual(result.pieces, HELLO);
  assert.equal(result.text, TEXT);
  assert.equal(result.finishReason, 'stop');
  assert.equal(await mockAttempts(stack.mock.url, key), 1);
});

test('failed:invalid_prompt: generateText throws APICallError 400 with the hint, after 1 attempt', async () => {
  const key = newKey();
  const err = await apiCallError(
    generateText({ model: openai(MODEL), prompt: PROMPT, headers: scenario('failed:invalid_prompt', key) }),
  );
  const message = `mock failure invalid_prompt${tail('bad_request', 1, HINT_BAD_REQUEST)}`;
  assert.ok(err.message.includes('[backstop: bad_request after 1 attempt(s): '), err.message);
  assert.equal(err.message, message);
  assert.equal(err.statusCode, 400);
  assert.equal(err.isRetryable, false);
  assert.equal(err.url, `${stack.gateway.url}${ROUTE}`);
  assert.equal(err.responseHeaders['x-backstop-kind'], 'bad_request');
  assert.equal(err.data.error.code, 'invalid_prompt');
  assert.equal(await mockAttempts(stack.mock.url, key), 1);
});

test('status:400: generateText throws APICallError 400 with the hint, after 1 attempt', async () => {
  const key = newKey();
  const err = await apiCallError(
    generateText({ model: openai(MODEL), prompt: PROMPT, headers: scenario('status:400', key) }),
  );
  assert.equal(err.message, `mock error 400${tail('bad_request', 1, HINT_BAD_REQUEST)}`);
  assert.equal(err.statusCode, 400);
  assert.equal(await mockAttempts(stack.mock.url, key), 1);
});

test('status:503 (maxRetries: 0): generateText throws APICallError 503 with the hint, after 3 gateway attempts', async () => {
  const key = newKey();
  const err = await apiCallError(
    generateText({ model: openai(MODEL), prompt: PROMPT, headers: scenario('status:503', key), maxRetries: 0 }),
  );
  assert.equal(err.message, `mock error 503${tail('server_error', 3, HINT_SERVER_ERROR)}`);
  assert.equal(err.statusCode, 503);
  assert.equal(err.isRetryable, true);
  assert.equal(err.responseHeaders['x-should-retry'], 'false');
  assert.equal(await mockAttempts(stack.mock.url, key), 3);
});

test('failed:invalid_prompt: streamText reports APICallError 400 with the hint and no text', async () => {
  const key = newKey();
  const errors = [];
  const stream = streamText({
    model: openai(MODEL),
    prompt: PROMPT,
    headers: scenario('failed:invalid_prompt', key),
    onError: ({ error }) => errors.push(error),
  });
  const parts = [];
  for await (const part of stream.fullStream) parts.push(part.type);
  assert.deepEqual(parts, ['start', 'error']);
  assert.equal(errors.length, 1);
  const [err] = errors;
  assert.ok(APICallError.isInstance(err), `${err?.constructor?.name}: ${err?.message}`);
  assert.equal(err.message, `mock failure invalid_prompt${tail('bad_request', 1, HINT_BAD_REQUEST)}`);
  assert.equal(err.statusCode, 400);
  assert.equal(await mockAttempts(stack.mock.url, key), 1);
});

test('cut:2: streamText gets the 2 pieces, finishReason error, and the hint in the error', async () => {
  const key = newKey();
  const errors = [];
  const stream = streamText({
    model: openai(MODEL),
    prompt: PROMPT,
    headers: scenario('cut:2', key),
    onError: ({ error }) => errors.push(error),
  });
  const pieces = [];
  for await (const piece of stream.textStream) pieces.push(piece);
  assert.deepEqual(pieces, HELLO.slice(0, 2));
  assert.equal(await stream.finishReason, 'error');
  assert.equal(errors.length, 1);
  // The gateway's own error event, reported as is (the next test has its shape).
  assert.equal(errors[0].message, MSG_TRUNCATED + tail('stream_truncated', 1, HINT_STREAM_TRUNCATED));
  assert.equal(await mockAttempts(stack.mock.url, key), 1);
});

// The gateway closes a cut Responses stream with `event: error` whose data is
// the API's own error event (`type: "error"`, `sequence_number`, `code`,
// `message`, `param`) plus the envelope under `error`. @ai-sdk/openai reads
// it as a stream error (`createOpenAIProviderStreamError`): a plain object,
// not an Error instance, with the event's message, `type`, a status derived
// from that type (`server_error` → 500, so `isRetryable: true` although the
// envelope says `retryable: false`) and the event as `data` — parsed by the
// event schema, which keeps `type`, `sequence_number` and the envelope's
// `type`, `code`, `message`, `param`, and drops the rest (`backstop`).
test('cut:2: streamText reports the gateway error event as the error itself', async () => {
  const key = newKey();
  const errors = [];
  const stream = streamText({
    model: openai(MODEL),
    prompt: PROMPT,
    headers: scenario('cut:2', key),
    onError: ({ error }) => errors.push(error),
  });
  const parts = [];
  for await (const part of stream.fullStream) parts.push(part);
  assert.deepEqual(
    parts.map((p) => p.type),
    ['start', 'start-step', 'text-start', 'text-delta', 'text-delta', 'error', 'finish-step', 'finish'],
  );
  assert.deepEqual(
    parts.filter((p) => p.type === 'text-delta').map((p) => p.text),
    HELLO.slice(0, 2),
  );
  assert.equal(await stream.finishReason, 'error');
  assert.equal(errors.length, 1);
  const [err] = errors;
  assert.equal(parts.find((p) => p.type === 'error').error, err, 'the error part carries the same error');
  assert.ok(!TypeValidationError.isInstance(err), 'not a TypeValidationError: the event matches the schema');
  assert.ok(!APICallError.isInstance(err));
  const message = MSG_TRUNCATED + tail('stream_truncated', 1, HINT_STREAM_TRUNCATED);
  assert.deepEqual(err, {
    message,
    type: 'server_error',
    code: undefined,
    statusCode: 500,
    isRetryable: true,
    data: {
      type: 'error',
      sequence_number: 6,
      error: { type: 'server_error', code: null, message, param: null },
    },
  });
  assert.equal(await mockAttempts(stack.mock.url, key), 1);
});
