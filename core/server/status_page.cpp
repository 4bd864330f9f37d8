#include "server/status_page.hpp"

namespace recsync::server {

namespace {

// Inline styles only (style-src 'unsafe-inline' is harmless); the script is a file of
// its own so that script-src can be 'self' and no injected markup can run.
constexpr std::string_view kPage = R"page(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>recsync status</title>
<link rel="icon" href="data:,">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1f24; background: #fafbfc; }
  h1 { font-size: 1.4em; margin: 0 0 .2em; } h2 { font-size: 1.1em; margin: 1.6em 0 .4em; }
  table { border-collapse: collapse; background: #fff; } th, td { padding: .3em .7em; border-bottom: 1px solid #e1e4e8; text-align: right; }
  th { background: #f1f3f5; font-weight: 600; } td.name, th.name, td.text { text-align: left; }
  .bad { color: #b31d28; font-weight: 600; } .warn { color: #9a6700; } .muted { color: #6a737d; }
  #token-form { margin: .8em 0; } input[type=password] { width: 22em; }
  pre { background: #fff; border: 1px solid #e1e4e8; padding: .6em; max-width: 70em; overflow: auto; }
  button { margin-right: .3em; }
</style>
</head>
<body>
<h1>recsync</h1>
<div class="muted">updated <span id="updated">never</span> &middot; <span id="summary"></span></div>
<div id="error" class="bad"></div>
<form id="token-form" autocomplete="off">
  <label>Token (status or admin; kept in this page only, gone when it closes):
    <input id="token" type="password" autocomplete="off"></label>
  <button type="submit" id="use-token">Use</button>
</form>
<h2>Connections</h2>
<table id="lanes"><thead><tr>
  <th class="name">connection</th><th class="name">provider</th><th>rate now / limit</th><th>queued</th><th>in flight / target</th>
  <th>oldest waiting</th><th>p99 delivery</th><th>answer ms</th><th>delivered</th><th>retried</th><th>dead letters</th><th>throttled</th><th class="name">state</th><th class="name">last error</th>
</tr></thead><tbody></tbody></table>
<h2>Dead letters</h2>
<div id="dlq-message" class="muted">Enter the admin token to list, show, replay or drop dead letters.</div>
<table id="dlq"><thead><tr>
  <th>id</th><th class="name">connection</th><th class="name">object</th><th class="name">record</th><th class="name">action</th><th>attempts</th><th class="name">reason</th><th></th>
</tr></thead><tbody></tbody></table>
<pre id="dlq-detail" hidden></pre>
<h2>Plugins and reload</h2>
<table id="plugins"><thead><tr><th class="name">plugin</th><th class="name">version</th><th class="name">path</th></tr></thead><tbody></tbody></table>
<p id="reload" class="muted"></p>
<script src="/ui/status.js"></script>
</body>
</html>
)page";

constexpr std::string_view kScript = R"js('use strict';
// The token lives in this variable only: not in a cookie, not in storage.
let token = '';
const $ = (id) => document.getElementById(id);

function headers() { return token ? { Authorization: 'Bearer ' + token } : {}; }

async function api(method, path) {
  const r = await fetch(path, { method, headers: headers(), cache: 'no-store' });
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  return { status: r.status, body };
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function age(ms) {
  if (!ms || ms <= 0) return '-';
  if (ms < 10000) return ms + ' ms';
  if (ms < 600000) return Math.floor(ms / 1000) + ' s';
  if (ms < 36000000) return Math.floor(ms / 60000) + ' m';
  return Math.floor(ms / 3600000) + ' h';
}

function rate(l) {
  if (!l.rate_per_second) return 'unlimited';
  const now = Math.round(l.current_rate_per_second * 100) / 100;
  return now + ' / ' + l.rate_per_second + '/s';
}

function renderLanes(connections) {
  const body = $('lanes').tBodies[0];
  body.replaceChildren();
  for (const [name, l] of Object.entries(connections)) {
    const row = body.insertRow();
    row.dataset.connection = name;
    cell(row, name, 'name');
    cell(row, l.provider, 'text');
    cell(row, rate(l), l.current_rate_per_second < l.rate_per_second ? 'warn' : '');
    cell(row, String(l.queued)).dataset.field = 'queued';
    cell(row, l.in_flight + ' / ' + l.in_flight_target);
    cell(row, age(l.oldest_age_ms), l.oldest_age_ms > 60000 ? 'bad' : '').dataset.field = 'oldest';
    cell(row, age(l.delivery_p99_ms));
    cell(row, String(l.answer_ms));
    cell(row, String(l.succeeded)).dataset.field = 'succeeded';
    cell(row, String(l.retried));
    cell(row, String(l.dead_lettered), l.dead_lettered ? 'warn' : '').dataset.field = 'dead_lettered';
    cell(row, String(l.throttled));
    let state = 'ok', cls = 'text';
    if (l.removed) { state = 'removed (keeps its tasks)'; cls = 'warn'; }
    else if (l.auth_error) { state = 'auth error: ' + l.auth_error; cls = 'bad'; }
    else if (l.paused_until_ms > Date.now()) { state = 'paused ' + age(l.paused_until_ms - Date.now()); cls = 'warn'; }
    cell(row, state, cls).dataset.field = 'state';
    cell(row, l.last_error ? new Date(l.last_error_ms).toLocaleTimeString() + ': ' + l.last_error : '-', 'text').dataset.field = 'last_error';
  }
}

function renderPlugins(status) {
  const body = $('plugins').tBodies[0];
  body.replaceChildren();
  for (const [id, p] of Object.entries(status.plugins)) {
    const row = body.insertRow();
    cell(row, id, 'name'); cell(row, p.version, 'text'); cell(row, p.path, 'text');
  }
  const r = status.reload || {};
  let text = 'generation ' + r.generation + (r.last_ok_ms ? ', last reload ' + new Date(r.last_ok_ms).toLocaleString() : ', not reloaded since start');
  if (r.last_error) text += '; last reload failed: ' + r.last_error;
  $('reload').textContent = text;
  $('reload').className = r.last_error ? 'bad' : 'muted';
}

async function refreshStatus() {
  try {
    const r = await api('GET', '/v1/status');
    if (r.status !== 200) {
      $('error').textContent = 'status: HTTP ' + r.status + (r.body && r.body.error ? ': ' + r.body.error : '') + (r.status === 401 ? ' (enter the status or admin token)' : '');
      return;
    }
    $('error').textContent = '';
    renderLanes(r.body.connections);
    renderPlugins(r.body);
    $('summary').textContent = r.body.rules + ' rule(s), ' + r.body.dead_letters + ' dead letter(s)';
    $('updated').textContent = new Date().toLocaleTimeString();
  } catch (e) {
    $('error').textContent = 'status: ' + e.message;
  }
}

function say(text, bad) {
  $('dlq-message').textContent = text;
  $('dlq-message').className = bad ? 'bad' : 'muted';
}

async function refreshDeadLetters() {
  if (!token) return;
  const r = await api('GET', '/v1/admin/dlq?limit=200');
  const body = $('dlq').tBodies[0];
  if (r.status !== 200) {
    body.replaceChildren();
    say('dead letters: HTTP ' + r.status + (r.body && r.body.error ? ': ' + r.body.error : ''), true);
    return;
  }
  body.replaceChildren();
  for (const d of r.body) {
    const row = body.insertRow();
    row.dataset.id = d.id;
    cell(row, String(d.id)); cell(row, d.connection, 'name'); cell(row, d.object, 'text'); cell(row, d.record_key, 'text');
    cell(row, d.action, 'text'); cell(row, String(d.attempts)); cell(row, d.reason, 'text');
    const actions = row.insertCell();
    for (const [label, fn] of [['show', show], ['replay', replay], ['drop', drop]]) {
      const b = document.createElement('button');
      b.textContent = label;
      b.dataset.action = label;
      b.addEventListener('click', () => fn(d.id));
      actions.appendChild(b);
    }
  }
  if (!r.body.length) {
    const row = body.insertRow();
    cell(row, 'none', 'muted').colSpan = 8;
  }
}

async function show(id) {
  const r = await api('GET', '/v1/admin/dlq/' + id);
  if (r.status !== 200) return say('show ' + id + ': HTTP ' + r.status + (r.body && r.body.error ? ': ' + r.body.error : ''), true);
  $('dlq-detail').hidden = false;
  $('dlq-detail').textContent = JSON.stringify(r.body, null, 2);
}

async function replay(id) {
  const r = await api('POST', '/v1/admin/dlq/' + id + '/replay');
  if (r.status !== 200) return say('replay ' + id + ' refused: HTTP ' + r.status + (r.body && r.body.error ? ': ' + r.body.error : ''), true);
  say('replayed ' + id);
  refreshDeadLetters(); refreshStatus();
}

async function drop(id) {
  if (!confirm('Drop dead letter ' + id + '? Its change is not sent.')) return;
  const r = await api('DELETE', '/v1/admin/dlq/' + id);
  if (r.status !== 200) return say('drop ' + id + ' refused: HTTP ' + r.status + (r.body && r.body.error ? ': ' + r.body.error : ''), true);
  say('dropped ' + id);
  refreshDeadLetters(); refreshStatus();
}

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  token = $('token').value.trim();
  $('token').value = '';
  say(token ? 'token set for this page' : 'token cleared');
  refreshStatus(); refreshDeadLetters();
});

refreshStatus();
setInterval(refreshStatus, 2000);
setInterval(refreshDeadLetters, 5000);
)js";

void protect(HttpResponse &r) {
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'");
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
    r.headers.emplace_back("Cache-Control", "no-store");
}

}  // namespace

bool status_page(std::string_view path, HttpResponse &out) {
    if (path != "/" && path != "/ui/status.js") return false;
    out = HttpResponse{};
    out.status = 200;
    out.content_type = path == "/" ? "text/html; charset=utf-8" : "text/javascript; charset=utf-8";
    out.body = std::string(path == "/" ? kPage : kScript);
    protect(out);
    return true;
}

}  // namespace recsync::server
