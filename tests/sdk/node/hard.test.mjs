// Hard failures through the official Node SDK with its DEFAULT retry
// settings: every error comes back as the gateway's envelope, throws the
// SDK's error class for its status, keeps the upstream's message verbatim
// and then the gateway's `[backstop: ...]` hint tail, exactly, and carries
// `x-should-retry: false` so the SDK adds no attempts of its own (the mock's
// per-key counter proves it).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import OpenAI from 'openai';

import {
  HELLO,
  MESSAGES,
  MODEL,
  makeClient,
  mockAttempts,
  newKey,
  scenario,
  startGateway,
  startStack,
} from './harness.mjs';

// `type` of the envelope, by kind (CONTRACT §3).
const TYPE_BY_KIND = {
  bad_request: 'invalid_request_error',
  unauthorized: 'authentication_error',
  forbidden: 'permission_error',
  not_found: 'not_found_error',
  quota_exceeded: 'insufficient_quota',
  server_error: 'server_error',
};

/** In an expected message: the envelope's `upstream_request_id`. */
const UPSTREAM_ID = '<upstream_request_id>';

let stack;
let client;

before(async () => {
  stack = await startStack();
  client = makeClient(stack.gateway);
});

after(async () => {
  await stack?.stop();
});

/** One chat call with scenario `steps`; the error, which must be exactly `Cls`. */
async function callError(sdk, steps, key, Cls) {
  let err;
  await assert.rejects(
    sdk.chat.completions.create({ model: MODEL, messages: MESSAGES }, { headers: scenario(steps, key) }),
    (e) => {
      err = e;
      return true;
    },
  );
  assert.equal(err.constructor, Cls, `${err.constructor.name}: ${err.message}`);
  return err;
}

/** The error's status, headers and envelope, exactly. */
function assertEnvelope(err, { status, kind, retryable, attempts, upstreamStatus, message }) {
  assert.equal(err.status, status);
  assert.equal(err.headers.get('x-should-retry'), 'false');
  assert.equal(err.headers.get('x-backstop-class'), 'hard');
  assert.equal(err.headers.get('x-backstop-kind'), kind);
  assert.equal(err.headers.get('x-backstop-attempts'), String(attempts));

  const body = err.error;
  assert.equal(typeof body, 'object', `no envelope: ${err.message}`);
  for (const field of ['message', 'type', 'param', 'code', 'backstop']) {
    assert.ok(field in body, `envelope lacks ${field}: ${JSON.stringify(body)}`);
  }
  assert.equal(body.type, TYPE_BY_KIND[kind]);
  const b = body.backstop;
  assert.equal(b.class, 'hard');
  assert.equal(b.kind, kind);
  assert.equal(b.retryable, retryable);
  assert.equal(b.attempts, attempts);
  assert.equal(b.upstream_status, upstreamStatus);
  assert.equal(b.request_id, err.headers.get('x-request-id'));
  assert.match(b.upstream_request_id ?? '', /^mock-\d+$/);
  assert.equal(typeof b.hint, 'string');
  assert.ok(b.hint.length > 0, 'empty hint');
  if (message !== undefined) {
    // The upstream's message verbatim (UPSTREAM_ID standing for the request
    // id some of the mock's messages carry), then the gateway's hint tail.
    message = message.replace(UPSTREAM_ID, b.upstream_request_id);
    const tail = ` [backstop: ${kind} after ${attempts} attempt(s): ${b.hint}]`;
    assert.equal(body.message, message + tail);
    assert.equal(err.message, `${status} ${message}${tail}`);
  }
  return body;
}

test('error:missing_model is 400 BadRequestError', async () => {
  const key = newKey();
  const err = await callError(client, 'error:missing_model', key, OpenAI.BadRequestError);
  const body = assertEnvelope(err, {
    status: 400, kind: 'bad_request', retryable: false, attempts: 1, upstreamStatus: 400,
    message: 'model is required',
  });
  assert.equal(body.param, 'model');
  assert.equal(body.code, 'missing_required_field');
  assert.equal(await mockAttempts(stack.mock.url, key), 1);
});

test('error:invalid_api_key is 401 AuthenticationError', async () => {
  const key = newKey();
  const err = await callError(client, 'error:invalid_api_key', key, OpenAI.AuthenticationError);
  const body = assertEnvelope(err, {
    status: 401, kind: 'unauthorized', retryable: false, attempts: 1, upstreamStatus: 401,
    message: 'Invalid API key provided',
  });
  assert.equal(body.code, 'invalid_api_key');
  assert.equal(await mockAttempts(stack.mock.url, key), 1);
});

test('error:forbidden is 403 PermissionDeniedError', async () => {
  const key = newKey();
  const err = await callError(client, 'error:forbidden', key, OpenAI.PermissionDeniedError);
  assertEnvelope(err, {
    status: 403, kind: 'forbidden', retryable: false, attempts: 1, upstreamStatus: 403,
    message: `request blocked by WAF (request id: ${UPSTREAM_ID})`,
  });
  assert.equal(await mockAttempts(stack.mock.url, key), 1);
});

test('error:model_not_found is 404 NotFoundError', async () => {
  const key = newKey();
  const err = await callError(client, 'error:model_not_found', key, OpenAI.NotFoundError);
  const body = assertEnvelope(err, {
    status: 404, kind: 'not_found', retryable: false, attempts: 1, upstreamStatus: 404,
    message: `model '${MODEL}' not found`,
  });
  assert.equal(body.code, 'model_not_found');
  assert.equal(await mockAttempts(stack.mock.url, key), 1);
});

test('error:insufficient_quota is 429 RateLimitError with kind quota_exceeded', async () => {
  const key = newKey();
  const err = await callError(client, 'error:insufficient_quota', key, OpenAI.RateLimitError);
  const body = assertEnvelope(err, {
    status: 429, kind: 'quota_exceeded', retryable: false, attempts: 1, upstreamStatus: 429,
    message: 'You exceeded your current quota, please check your plan and billing details.',
  });
  assert.equal(body.code, 'insufficient_quota');
  assert.equal(await mockAttempts(stack.mock.url, key), 1);
});

test('error:internal_error is 500 InternalServerError after exactly 3 attempts', async () => {
  const key = newKey();
  const err = await callError(client, 'error:internal_error', key, OpenAI.InternalServerError);
  const body = assertEnvelope(err, {
    status: 500, kind: 'server_error', retryable: true, attempts: 3, upstreamStatus: 500,
    message: 'Internal error',
  });
  assert.equal(body.code, 'internal_error');
  assert.equal(await mockAttempts(stack.mock.url, key), 3);
});

test('status:503 always: upstream counts exactly 3 requests for one SDK call', async () => {
  const key = newKey();
  const err = await callError(client, 'status:503', key, OpenAI.InternalServerError);
  assertEnvelope(err, { status: 503, kind: 'server_error', retryable: true, attempts: 3, upstreamStatus: 503 });
  assert.equal(await mockAttempts(stack.mock.url, key), 3);
});

test('error:invalid_request_500 is rewritten to 400 BadRequestError after 1 attempt', async () => {
  const key = newKey();
  const err = await callError(client, 'error:invalid_request_500', key, OpenAI.BadRequestError);
  const body = assertEnvelope(err, {
    status: 400, kind: 'bad_request', retryable: false, attempts: 1, upstreamStatus: 500,
    message: `field messages is required (request id: ${UPSTREAM_ID})`,
  });
  assert.equal(body.code, 'invalid_request');
  assert.equal(await mockAttempts(stack.mock.url, key), 1);
});

test('retry_after:1 then ok waits at least 1 s and succeeds', async () => {
  const key = newKey();
  const started = performance.now();
  const { data, response } = await client.chat.completions
    .create({ model: MODEL, messages: MESSAGES }, { headers: scenario('retry_after:1,ok', key) })
    .withResponse();
  const elapsedMs = performance.now() - started;
  assert.equal(response.status, 200);
  assert.equal(data.choices[0].message.content, HELLO.join(''));
  assert.equal(response.headers.get('x-backstop-attempts'), '2');
  assert.equal(response.headers.get('x-backstop-kind'), 'ok');
  assert.equal(await mockAttempts(stack.mock.url, key), 2);
  assert.ok(elapsedMs >= 1000, `gateway did not honour Retry-After: 1 (took ${elapsedMs.toFixed(0)} ms)`);
});

test('own gateway with max_attempts=1 leaves the retry to the SDK (no x-should-retry)', async () => {
  const key = newKey();
  const gateway = await startGateway(stack.mock.url, { BACKSTOP_RETRY__MAX_ATTEMPTS: '1' });
  try {
    const sdk = makeClient(gateway, { maxRetries: 0 });
    const err = await callError(sdk, 'status:503', key, OpenAI.InternalServerError);
    assert.equal(err.status, 503);
    assert.equal(err.headers.get('x-should-retry'), null);
    assert.equal(err.headers.get('x-backstop-attempts'), '1');
    assert.equal(err.headers.get('x-backstop-kind'), 'server_error');
    assert.equal(err.error.backstop.attempts, 1);
    assert.equal(err.error.backstop.retryable, true);
    assert.equal(await mockAttempts(stack.mock.url, key), 1);
  } finally {
    await gateway.stop();
  }
});
