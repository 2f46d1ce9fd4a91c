// Inbound auth as an app sees it through the official Node SDK: the SDK's
// apiKey is the gateway's token, the upstream receives the configured
// provider key (never the token), and a wrong token is refused with 401
// before anything reaches the upstream.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import OpenAI from 'openai';

import { MESSAGES, MODEL, SDK_TIMEOUT_MS, mockAttempts, newKey, scenario, startGateway, startMock } from './harness.mjs';

const TOKEN = 'gw-token-node-sdk';
const PROVIDER_KEY = 'sk-provider-configured-node';

let mock;
let gateway;

before(async () => {
  mock = await startMock();
  gateway = await startGateway(mock.url, {
    BACKSTOP_AUTH__TOKENS: TOKEN,
    BACKSTOP_UPSTREAM__API_KEY: PROVIDER_KEY,
  });
});

after(async () => {
  await gateway?.stop();
  await mock?.stop();
});

test('the SDK key is the gateway token and the upstream gets the provider key', async () => {
  const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: TOKEN, maxRetries: 0, timeout: SDK_TIMEOUT_MS });
  const response = await client.chat.completions
    .create({ model: MODEL, messages: MESSAGES }, { headers: { 'x-mock-echo': '1' } })
    .asResponse();
  assert.equal(response.status, 200);
  const text = await response.text();
  const echo = JSON.parse(text);
  assert.equal(echo.headers.authorization, `Bearer ${PROVIDER_KEY}`);
  assert.ok(!text.includes(TOKEN));
});

test('a wrong token is refused before the upstream', async () => {
  const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'sk-someone-elses', timeout: SDK_TIMEOUT_MS });
  const key = newKey();
  await assert.rejects(
    client.chat.completions.create({ model: MODEL, messages: MESSAGES }, { headers: scenario('ok', key) }),
    (err) => {
      assert.ok(err instanceof OpenAI.AuthenticationError, String(err));
      assert.equal(err.status, 401);
      assert.equal(err.error.backstop.kind, 'unauthorized');
      assert.equal(err.error.backstop.attempts, 0);
      assert.equal(err.headers.get('x-should-retry'), 'false');
      return true;
    },
  );
  assert.equal(await mockAttempts(mock.url, key), 0);
});
