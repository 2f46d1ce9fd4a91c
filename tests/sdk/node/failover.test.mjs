// Failover as the official Node SDK (default settings) sees it: a repaired
// stream and a hedged request are each one answer.
//
// - Repair: the primary mock (`--mix stall:5000=1`) stalls after its first
//   content event; its upstream's `stream_idle_timeout_ms = 300` cuts it, and
//   the route (`repair_streams = true`) continues the answer on the backup as
//   a prefill. The SDK reads one stream: one id, model and created, one role,
//   the whole text, the whole answer's usage; its stream helper accumulates
//   one message.
// - Hedge: the primary mock (`--mix first_token:5000=1`) holds its first
//   content event (a non-streamed answer: its whole body) for 5 s; the route's
//   `hedge_after_ms = 300` starts the backup in parallel, which wins, and
//   `backstop_hedges_total{outcome="hedge_won"}` counts it.
//
// Each mock counts its requests by `x-mock-key` (the gateway forwards the
// header to every target, continuation and hedge included).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { HELLO, MESSAGES, makeClient, mockAttempts, newKey, startGatewayWithConfig, startMock } from './harness.mjs';

const ROUTED_MODEL = 'gpt-failover';
const PRIMARY_MODEL = 'primary-model';
const BACKUP_MODEL = 'fallback-model';
const CONTENT = HELLO.join('');
const ROUTE = '/v1/chat/completions';
/** Every answer here takes well under this; the stalls and holds are 5 s. */
const BOUND_MS = 3000;

// Both configs: `[upstream]` (the default) answers no request here, since the
// route matches them all; it names the primary mock so that nothing could
// leave the machine.

function repairConfig(primaryUrl, backupUrl) {
  return `
[upstream]
url = "${primaryUrl}/v1"

[upstreams.primary]
url = "${primaryUrl}/v1"
prefill = true
stream_idle_timeout_ms = 300

[upstreams.backup]
url = "${backupUrl}/v1"
prefill = true

[[routes]]
name = "repair"
models = ["${ROUTED_MODEL}"]
repair_streams = true
targets = [
  { upstream = "primary", model = "${PRIMARY_MODEL}" },
  { upstream = "backup", model = "${BACKUP_MODEL}" },
]
`;
}

function hedgeConfig(primaryUrl, backupUrl) {
  return `
[upstream]
url = "${primaryUrl}/v1"

[upstreams.primary]
url = "${primaryUrl}/v1"

[upstreams.backup]
url = "${backupUrl}/v1"

[[routes]]
name = "hedge"
models = ["${ROUTED_MODEL}"]
hedge_after_ms = 300
targets = [
  { upstream = "primary", model = "${PRIMARY_MODEL}" },
  { upstream = "backup", model = "${BACKUP_MODEL}" },
]
`;
}

/**
 * Registers `before`/`after` hooks in the current `describe` that start a
 * primary mock with `--mix primaryMix`, a plain backup mock and a gateway
 * with `config(primary, backup)`; returns the object they fill in.
 */
function servers(primaryMix, config) {
  const s = {};
  before(async () => {
    s.primary = await startMock('--mix', primaryMix);
    s.backup = await startMock();
    s.gateway = await startGatewayWithConfig(config(s.primary.url, s.backup.url));
    s.client = makeClient(s.gateway);
  });
  after(async () => {
    await s.gateway?.stop();
    await s.backup?.stop();
    await s.primary?.stop();
  });
  return s;
}

/**
 * The value of the sample of `name` with exactly `labels` on the gateway's
 * /metrics (in whatever order it prints them); 0 when absent.
 */
async function counter(gateway, name, labels) {
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  const want = JSON.stringify(Object.entries(labels).sort());
  for (const line of text.split('\n')) {
    const found = /^(\w+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!found || found[1] !== name) continue;
    const got = [...found[2].matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]).sort();
    if (JSON.stringify(got) === want) return Number(found[3]);
  }
  return 0;
}

async function assertOneRequestEach(s, key) {
  assert.deepEqual([await mockAttempts(s.primary.url, key), await mockAttempts(s.backup.url, key)], [1, 1]);
}

describe('a stream that stalls after its first content event, repaired on the backup', () => {
  const s = servers('stall:5000=1', repairConfig);

  test('reads as one stream: one id, model and created, one role, the whole text and usage', async () => {
    const key = newKey();
    const repairsBefore = await counter(s.gateway, 'backstop_stream_repairs_total', { route: ROUTE });
    const started = Date.now();
    const stream = await s.client.chat.completions.create(
      {
        model: ROUTED_MODEL,
        messages: MESSAGES,
        stream: true,
        stream_options: { include_usage: true },
      },
      { headers: { 'x-mock-key': key } },
    );
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const took = Date.now() - started;
    assert.ok(took < BOUND_MS, `${took} ms`);
    assert.ok(chunks.length > 1);
    const [first] = chunks;
    assert.equal(first.object, 'chat.completion.chunk');
    assert.equal(first.model, PRIMARY_MODEL);
    for (const c of chunks) {
      assert.deepEqual([c.id, c.model, c.created], [first.id, first.model, first.created], JSON.stringify(c));
    }
    const withChoice = chunks.filter((c) => c.choices.length > 0);
    const pieces = withChoice.map((c) => c.choices[0].delta.content).filter((t) => t);
    assert.deepEqual(pieces, HELLO);
    assert.equal(pieces.join(''), CONTENT);
    assert.deepEqual(withChoice.map((c) => c.choices[0].delta.role).filter((r) => r !== undefined), ['assistant']);
    assert.deepEqual(withChoice.map((c) => c.choices[0].finish_reason).filter((f) => f != null), ['stop']);
    // The usage of the whole answer, in the last chunk (no choices).
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 });
    assert.deepEqual(chunks.slice(0, -1).filter((c) => c.usage != null), []);
    await assertOneRequestEach(s, key);
    assert.equal(await counter(s.gateway, 'backstop_stream_repairs_total', { route: ROUTE }), repairsBefore + 1);
  });

  test('the stream helper accumulates one message', async () => {
    const key = newKey();
    const started = Date.now();
    const stream = s.client.chat.completions.stream(
      { model: ROUTED_MODEL, messages: MESSAGES, stream_options: { include_usage: true } },
      { headers: { 'x-mock-key': key } },
    );
    const deltas = [];
    stream.on('content', (delta) => deltas.push(delta));
    const completion = await stream.finalChatCompletion();
    const took = Date.now() - started;
    assert.ok(took < BOUND_MS, `${took} ms`);
    assert.deepEqual(deltas, HELLO);
    assert.equal(completion.model, PRIMARY_MODEL);
    assert.equal(completion.choices.length, 1);
    const [choice] = completion.choices;
    assert.deepEqual([choice.index, choice.finish_reason], [0, 'stop']);
    assert.equal(choice.message.role, 'assistant');
    assert.equal(choice.message.content, CONTENT);
    assert.equal(choice.message.tool_calls, undefined);
    assert.deepEqual(completion.usage, { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 });
    await assertOneRequestEach(s, key);
  });
});

describe('a primary slow to its first token, hedged on the backup after 300 ms', () => {
  const s = servers('first_token:5000=1', hedgeConfig);
  const hedgesWon = () => counter(s.gateway, 'backstop_hedges_total', { route: ROUTE, outcome: 'hedge_won' });

  test('a streamed request is one answer from the backup', async () => {
    const key = newKey();
    const wonBefore = await hedgesWon();
    const started = Date.now();
    const { data: stream, response } = await s.client.chat.completions
      .create({ model: ROUTED_MODEL, messages: MESSAGES, stream: true }, { headers: { 'x-mock-key': key } })
      .withResponse();
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-backstop-target'), `backup/${BACKUP_MODEL}`);
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const took = Date.now() - started;
    assert.ok(took < BOUND_MS, `${took} ms`);
    assert.deepEqual([...new Set(chunks.map((c) => c.model))], [BACKUP_MODEL]);
    assert.equal(new Set(chunks.map((c) => c.id)).size, 1);
    const withChoice = chunks.filter((c) => c.choices.length > 0);
    assert.deepEqual(withChoice.map((c) => c.choices[0].delta.content).filter((t) => t), HELLO);
    assert.deepEqual(withChoice.map((c) => c.choices[0].finish_reason).filter((f) => f != null), ['stop']);
    await assertOneRequestEach(s, key);
    assert.equal(await hedgesWon(), wonBefore + 1);
  });

  test('a non-streamed request is one answer from the backup', async () => {
    const key = newKey();
    const wonBefore = await hedgesWon();
    const started = Date.now();
    const { data: completion, response } = await s.client.chat.completions
      .create({ model: ROUTED_MODEL, messages: MESSAGES }, { headers: { 'x-mock-key': key } })
      .withResponse();
    const took = Date.now() - started;
    assert.ok(took < BOUND_MS, `${took} ms`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-backstop-target'), `backup/${BACKUP_MODEL}`);
    assert.equal(completion.model, BACKUP_MODEL);
    assert.equal(completion.choices.length, 1);
    assert.equal(completion.choices[0].message.content, CONTENT);
    assert.equal(completion.choices[0].finish_reason, 'stop');
    await assertOneRequestEach(s, key);
    assert.equal(await hedgesWon(), wonBefore + 1);
  });
});
