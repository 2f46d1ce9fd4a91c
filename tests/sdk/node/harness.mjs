// Process harness for the SDK tests: starts `backstop-mock` and `backstop`
// from `target/debug/` (or `$BACKSTOP_BIN_DIR`) on ephemeral ports, reads
// each one's address from its first stdout line, and stops them again.
// Each test file calls `startStack()` in `before` and `stack.stop()` in
// `after`; a test that needs other gateway settings calls
// `startGateway(mock.url, { BACKSTOP_RETRY__MAX_ATTEMPTS: '1' })`.
// BACKSTOP_TEST_SHOW_LOGS=1 prints each child's stderr when it is stopped.

import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import OpenAI from 'openai';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..', '..');
const STARTUP_TIMEOUT_MS = Number(process.env.BACKSTOP_TEST_STARTUP_TIMEOUT_S ?? '15') * 1000;
const ADDRESS = /listening on (http:\/\/\S+)/;

/** What every test asks for; the mock echoes the model back. */
export const MODEL = 'gpt-4o-mini';
export const MESSAGES = [{ role: 'user', content: 'Say hello.' }];
/** The mock's default content: three stream pieces. */
export const HELLO = ['Hello', ' from', ' backstop-mock.'];
/** Bounded so that a hung gateway fails one test instead of the whole run. */
export const SDK_TIMEOUT_MS = 20_000;

/** Fast retries so that a 3-attempt failure costs milliseconds. */
export const GATEWAY_TEST_ENV = {
  BACKSTOP_RETRY__BASE_DELAY_MS: '10',
  BACKSTOP_RETRY__MAX_DELAY_MS: '50',
};

/** Where the binaries are: `$BACKSTOP_BIN_DIR` or `<repo>/target/debug`. */
export function binDir() {
  return process.env.BACKSTOP_BIN_DIR || path.join(REPO_ROOT, 'target', 'debug');
}

function binary(name) {
  const file = path.join(binDir(), name);
  if (!existsSync(file)) {
    throw new Error(`${file} not found: run \`cargo build --workspace --bins\` first (or set BACKSTOP_BIN_DIR)`);
  }
  return file;
}

/**
 * Start `binDir()/name args...` in a fresh empty working directory (so no
 * `config/backstop.toml` of the caller's is picked up) and resolve to
 * `{ name, url, child, stderr(), stop() }` once it printed
 * `... listening on http://HOST:PORT`. `files` (relative name -> text) are
 * written into that directory first, and go away with it.
 */
export async function start(name, args = [], env = {}, files = {}) {
  // The gateway rejects every unknown BACKSTOP_* variable as a config key,
  // so none of ours (BACKSTOP_BIN_DIR, BACKSTOP_TEST_*) or the caller's shell
  // leaks in: children see exactly the BACKSTOP_* given here.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BACKSTOP_')));
  const cwd = mkdtempSync(path.join(tmpdir(), `${name}-`));
  for (const [rel, text] of Object.entries(files)) writeFileSync(path.join(cwd, rel), text, 'utf8');
  const child = spawn(binary(name), args, {
    cwd,
    env: { ...inherited, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const lines = createInterface({ input: child.stdout });
  const spawnError = new Promise((_, reject) => child.once('error', reject));

  const firstLine = new Promise((resolve) => lines.once('line', resolve));
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ timeout: true }), STARTUP_TIMEOUT_MS);
  });
  const cleanupDir = () => rmSync(cwd, { recursive: true, force: true });
  const fail = async (why) => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    const { code, signal } = await exited;
    cleanupDir();
    return new Error(`${name} ${args.join(' ')}: ${why} (exit ${code ?? signal}); stderr:\n${stderr}`);
  };

  let first;
  try {
    first = await Promise.race([
      firstLine.then((line) => ({ line })),
      exited.then(() => ({ exited: true })),
      timeout,
      spawnError,
    ]);
  } finally {
    clearTimeout(timer);
  }
  if (first.timeout) throw await fail(`printed no address within ${STARTUP_TIMEOUT_MS / 1000} s`);
  if (first.exited) throw await fail('exited before printing its address');
  const found = ADDRESS.exec(first.line);
  if (!found) throw await fail(`first stdout line is not '... listening on http://...': ${JSON.stringify(first.line)}`);
  // Keep draining stdout so the child never blocks on a full pipe.
  child.stdout.resume();

  return {
    name,
    child,
    url: found[1].replace(/\/+$/, ''),
    stderr: () => stderr,
    async stop() {
      if (process.env.BACKSTOP_TEST_SHOW_LOGS === '1') {
        process.stderr.write(`--- ${name} stderr ---\n${stderr}\n`);
      }
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(killer);
      }
      cleanupDir();
    },
  };
}

/** `backstop-mock --listen 127.0.0.1:0 [extraArgs]`. */
export function startMock(...extraArgs) {
  return start('backstop-mock', ['--listen', '127.0.0.1:0', ...extraArgs]);
}

/** `backstop` in front of the mock, with fast retries and `extraEnv` on top. */
export function startGateway(mockUrl, extraEnv = {}) {
  return start('backstop', [], {
    BACKSTOP_LISTEN: '127.0.0.1:0',
    BACKSTOP_UPSTREAM: `${mockUrl}/v1`,
    ...GATEWAY_TEST_ENV,
    ...extraEnv,
  });
}

/** Relative to the gateway's working directory, where `start` writes it. */
export const GATEWAY_CONFIG_FILE = 'backstop-test.toml';

/**
 * `backstop` reading `configToml` as its config file (written into its
 * working directory, named by `BACKSTOP_CONFIG`), with fast retries and
 * `extraEnv` on top. No `BACKSTOP_UPSTREAM`: the file's `[upstream]` and
 * `[upstreams.*]` say where requests go.
 */
export function startGatewayWithConfig(configToml, extraEnv = {}) {
  return start(
    'backstop',
    [],
    {
      BACKSTOP_LISTEN: '127.0.0.1:0',
      BACKSTOP_CONFIG: GATEWAY_CONFIG_FILE,
      ...GATEWAY_TEST_ENV,
      ...extraEnv,
    },
    { [GATEWAY_CONFIG_FILE]: configToml },
  );
}

/** A mock and a gateway in front of it; `stop()` ends both. */
export async function startStack(extraEnv = {}) {
  const mock = await startMock();
  let gateway;
  try {
    gateway = await startGateway(mock.url, extraEnv);
  } catch (e) {
    await mock.stop();
    throw e;
  }
  return {
    mock,
    gateway,
    async stop() {
      await gateway.stop();
      await mock.stop();
    },
  };
}

/** An official SDK client on `gateway` with the SDK's default retry settings. */
export function makeClient(gateway, options = {}) {
  return new OpenAI({
    baseURL: `${gateway.url}/v1`,
    apiKey: 'sk-test-backstop',
    timeout: SDK_TIMEOUT_MS,
    ...options,
  });
}

/** A fresh `x-mock-key` so each test counts only its own attempts. */
export function newKey() {
  return `k-${randomUUID()}`;
}

/** Headers for a mock scenario (and key), for the SDK's `{ headers }` option. */
export function scenario(steps, key) {
  const headers = { 'x-mock-scenario': steps };
  if (key !== undefined) headers['x-mock-key'] = key;
  return headers;
}

/** GET `url` straight (not through the SDK) and parse its JSON body. */
export async function getJson(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** How many requests the mock has seen with `x-mock-key: key`. */
export async function mockAttempts(mockUrl, key) {
  const stats = await getJson(`${mockUrl}/mock/stats`);
  return stats.by_key?.[key] ?? 0;
}
