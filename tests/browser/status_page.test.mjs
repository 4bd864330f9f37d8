// The status page in Debian's headless Chromium, driven by playwright-core: recsync and the
// mock CRM run as real processes on loopback. It asserts that the page loads with no
// console error, that a connection's numbers move while events flow, and that a dead
// letter is refused without the admin token (it stays) and replayed with it (the record
// reaches the CRM), and that recsync's log (JSON lines, debug) holds neither token. A
// screenshot is kept as a test artefact.
//
// page.waitForFunction is not used: it evaluates strings, which the page's
// Content-Security-Policy (no 'unsafe-eval') refuses, as it should.
//
// Usage (ctest runs it): node status_page.test.mjs BUILD_DIR SOURCE_DIR
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';

const [buildDir, sourceDir] = process.argv.slice(2);
if (!buildDir || !sourceDir) throw new Error('usage: node status_page.test.mjs BUILD_DIR SOURCE_DIR');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
if (!fs.existsSync(chromiumPath)) throw new Error(chromiumPath + ' is missing: scripts/deps installs Debian\'s chromium');

const children = [];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'recsync-browser-'));
let browser;
const cleanup = () => {
  for (const c of children) c.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
};
process.on('exit', cleanup);

const freePort = () => new Promise((resolve, reject) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  s.on('error', reject);
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(what, pred, ms = 20000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try { if (await pred()) return; } catch (e) { /* not yet */ }
    await sleep(100);
  }
  throw new Error('timed out waiting for ' + what);
}
function start(bin, args, env, log) {
  const out = fs.openSync(path.join(dir, log), 'w');
  const c = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', out, out] });
  children.push(c);
  return c;
}

const adminToken = 'browser-admin-token-0c4e';
const crmToken = 'browser-crm-token-9d21';
const [port, crmPort] = [await freePort(), await freePort()];
const api = 'http://127.0.0.1:' + port;
const crm = 'http://127.0.0.1:' + crmPort;

// Plugins in a directory only we can write (recsync refuses others), rules of our own.
fs.mkdirSync(path.join(dir, 'plugins'), { mode: 0o700 });
fs.copyFileSync(path.join(buildDir, 'plugins', 'hubspot.so'), path.join(dir, 'plugins', 'hubspot.so'));
fs.chmodSync(path.join(dir, 'plugins', 'hubspot.so'), 0o755);
fs.mkdirSync(path.join(dir, 'rules', 'schemas'), { recursive: true });
fs.copyFileSync(path.join(sourceDir, 'rules', 'schemas', 'contact.json'), path.join(dir, 'rules', 'schemas', 'contact.json'));
fs.writeFileSync(path.join(dir, 'rules', 'crm.yaml'),
  'mappings:\n  m: { fields: [ { from: email, to: email } ] }\n' +
  'rules:\n  - { name: new, on: { entity: contact, event: created }, do: { action: create, target: crm, object: contacts, mapping: m } }\n');
fs.writeFileSync(path.join(dir, 'recsync.yaml'),
  'plugins_dir: plugins\nrules_dir: rules\nstate: { path: state/r.db, synchronous: normal }\n' +
  `server: { listen: '127.0.0.1:${port}', admin_token_env: RECSYNC_BROWSER_ADMIN }\nlog_level: debug\nlog_format: json\nconnections:\n` +
  `  crm: { provider: hubspot, base_url: '${crm}', credentials: { token_env: RECSYNC_BROWSER_CRM }, rate_limit: { per_second: 40, burst: 5 }, batch: { max_size: 1 }, retry: { max_attempts: 1 } }\n`);

start(path.join(buildDir, 'tests', 'mock_crm', 'recsync-mock-crm'), ['--listen', '127.0.0.1:' + crmPort, '--token', crmToken], {}, 'mock-crm.log');
start(path.join(buildDir, 'recsync'), ['run', '-c', path.join(dir, 'recsync.yaml')],
  { RECSYNC_BROWSER_ADMIN: adminToken, RECSYNC_BROWSER_CRM: crmToken }, 'recsync.log');
await waitFor('recsync and the mock CRM', async () => (await fetch(api + '/readyz')).ok && (await fetch(crm + '/_mock/stats')).ok);

const post = (url, body, headers = {}) => fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) });
const event = (key) => ({ entity: 'contact', event: 'created', key, data: { email: key + '@example.com' } });
const crmHas = async (key) => (await (await fetch(crm + '/_mock/records?object=contacts')).json()).some((r) => r.properties.email === key + '@example.com');

// A dead letter before the page opens: the CRM refuses one create for good (a 400).
assert.equal((await post(crm + '/_mock/faults', { fail_next: 1, status: 400 })).status, 200);
assert.equal((await post(api + '/v1/events', event('refused-once'))).status, 202);
const letters = async () => (await (await fetch(api + '/v1/admin/dlq', { headers: { Authorization: 'Bearer ' + adminToken } })).json());
await waitFor('the dead letter', async () => (await letters()).length === 1);
const letterId = (await letters())[0].id;

try {
  browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox', '--disable-gpu'] });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  page.on('dialog', (d) => d.accept());

  const response = await page.goto(api + '/');
  assert.equal(response.status(), 200);
  assert.match(response.headers()['content-security-policy'], /script-src 'self'/);
  const delivered = () => page.textContent('#lanes tr[data-connection="crm"] td[data-field="succeeded"]');
  await page.waitForSelector('#lanes tr[data-connection="crm"]');
  assert.equal((await page.textContent('#lanes tr[data-connection="crm"] td[data-field="dead_lettered"]')).trim(), '1');
  assert.match(await page.textContent('#lanes tr[data-connection="crm"] td[data-field="last_error"]'), /HubSpot returned 400/);

  // Events flow (40/s): the page's delivered count moves by itself, without a reload.
  const before = Number(await delivered());
  const sender = (async () => {
    for (let i = 0; i < 30; ++i) { await post(api + '/v1/events', event('flow-' + i)); await sleep(50); }
  })();
  await waitFor('the delivered count to move on the page', async () => Number(await delivered()) >= before + 10, 15000);
  await sender;
  await waitFor('all 30 delivered on the page', async () => Number(await delivered()) >= before + 30, 15000);
  assert.deepEqual(consoleErrors, [], 'console errors while loading and refreshing');

  // A wrong token: the dead letters cannot be listed, and a replay is refused; it stays.
  await page.fill('#token', 'not-the-admin-token');
  await page.click('#use-token');
  await waitFor('the refusal on the page', async () => (await page.textContent('#dlq-message')).includes('HTTP 401'));
  const refused = await page.evaluate(async (id) => (await fetch('/v1/admin/dlq/' + id + '/replay', { method: 'POST', headers: { Authorization: 'Bearer not-the-admin-token' } })).status, letterId);
  assert.equal(refused, 401);
  assert.equal((await letters()).length, 1, 'a refused replay left the letter');
  assert.equal(await crmHas('refused-once'), false);

  // The admin token: listed, shown, replayed; the record reaches the CRM.
  await page.fill('#token', adminToken);
  await page.click('#use-token');
  const row = `#dlq tr[data-id="${letterId}"]`;
  await page.waitForSelector(row);
  await page.click(row + ' button[data-action="show"]');
  await waitFor('the letter shown', async () => (await page.isVisible('#dlq-detail')) && (await page.textContent('#dlq-detail')).includes('refused-once'));
  await page.screenshot({ path: path.join(buildDir, 'Testing', 'status-page.png'), fullPage: true });
  await page.click(row + ' button[data-action="replay"]');
  await waitFor('the replay on the page', async () => (await page.textContent('#dlq-message')) === 'replayed ' + letterId);
  await waitFor('the replayed record in the CRM', () => crmHas('refused-once'));
  assert.equal((await letters()).length, 0);
  // The token is in no cookie and no storage the page's scripts (or others) could read.
  assert.equal(await page.evaluate(() => document.cookie + localStorage.length + sessionStorage.length), '00');
  const cookies = await page.context().cookies();
  assert.equal(cookies.length, 0);
  // recsync's own log (debug, JSON lines) holds neither token, though both went through it.
  const log = fs.readFileSync(path.join(dir, 'recsync.log'), 'utf8');
  const lines = log.split('\n').filter((l) => l);
  assert.ok(lines.length > 10, 'recsync logged little: ' + log.slice(0, 500));
  for (const l of lines) JSON.parse(l);  // every line one JSON object
  assert.ok(!log.includes(adminToken) && !log.includes(crmToken), 'a token in recsync.log');
  console.log(JSON.stringify({ ok: true, delivered_on_page: Number(await delivered()), screenshot: path.join(buildDir, 'Testing', 'status-page.png') }));
} catch (e) {
  console.error(e);
  for (const log of ['recsync.log', 'mock-crm.log']) console.error('--- ' + log + '\n' + fs.readFileSync(path.join(dir, log), 'utf8').slice(-4000));
  process.exitCode = 1;
} finally {
  if (browser) await browser.close();
}
// The servers are children: killed here (the exit handler removes the directory), or
// node would wait for them.
process.exit(process.exitCode ?? 0);
