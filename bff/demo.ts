/**
 * A one-page live room at `/`, for demos and manual testing: sign in as anyone (development
 * tokens, only while DEMO=on, which is off by default), enter or open a room, watch its stream, chat, send gifts, see the
 * ranking. It uses the public API and nothing else, so it doubles as a smoke test of it.
 *
 * The page is inline strings rather than files so the build (tsc) needs no copy step; the script
 * is served from its own URL because helmet's Content-Security-Policy forbids inline scripts.
 */
import { Router } from 'express';
import { z } from 'zod';
import type { TokenVerifier } from './auth.js';
import { HttpError } from './errors.js';
import { int64Id, parseInput } from './validate.js';

export const tokenBody = z.strictObject({
  userId: int64Id,
  role: z.enum(['viewer', 'streamer', 'admin'], { error: 'must be viewer, streamer or admin' }),
  name: z.string().max(20).default(''),
});

/**
 * `production` (NODE_ENV=production) refuses admin tokens: a demo page switched on in a deployed
 * environment must not hand anyone the keys to the catalog, policies and switches.
 */
export function demoRoutes(verifier: TokenVerifier, opts: { production: boolean } = { production: process.env.NODE_ENV === 'production' }): Router {
  const r = Router();
  r.get('/', (_req, res) => {
    res.type('html').send(PAGE);
  });
  r.get('/demo.js', (_req, res) => {
    res.type('js').send(SCRIPT);
  });
  /** Development sign-in: a token for whoever the page says (no admin in production). Never mounted when DEMO=off. */
  r.post('/demo/token', async (req, res) => {
    const body = parseInput(tokenBody, req.body, 'body');
    if (body.role === 'admin' && opts.production) {
      throw new HttpError(403, { error: { code: 'PERMISSION_DENIED', message: 'role: the demo does not mint admin tokens in production', field: 'role' } });
    }
    res.json({ token: await verifier.sign({ userId: body.userId, role: body.role, name: body.name || `user${body.userId}` }, 12 * 3600) });
  });
  return r;
}

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>livemesh demo room</title>
<style>
body{font:15px system-ui,sans-serif;margin:0;background:#111;color:#eee}
header,section{padding:.6em 1em}header{background:#222;display:flex;gap:.5em;flex-wrap:wrap;align-items:center}
input,select,button{font:inherit;padding:.3em .5em}button{cursor:pointer}
main{display:grid;grid-template-columns:2fr 1fr;gap:1em;padding:1em}
#events{list-style:none;padding:0;margin:0;height:55vh;overflow:auto;background:#1a1a1a;border-radius:6px}
#events li{padding:.2em .6em}#events li.gift{color:#ffb347;font-weight:600}#events li.notice{color:#8ecae6}
#gifts button{margin:.2em}#status{opacity:.7}
</style></head>
<body>
<header>
  <label>user <input id="user" size="6" value="7001"></label>
  <label>name <input id="name" size="8" value="Fan"></label>
  <select id="role"><option>viewer</option><option>streamer</option><option>admin</option></select>
  <button id="signin">Sign in</button>
  <label>room <input id="room" size="8"></label>
  <button id="enter">Enter</button>
  <button id="create" title="as a streamer: create a room and go live">New live room</button>
  <span id="status">signed out</span>
</header>
<main>
  <div>
    <h2 id="title">No room</h2>
    <div>online: <span id="online">-</span> · <span id="degraded"></span></div>
    <ul id="events"></ul>
    <form id="chat"><input id="text" size="40" placeholder="say something" maxlength="200"> <button>Send</button></form>
    <div id="gifts"></div>
  </div>
  <aside><h3>Ranking (live)</h3><ol id="ranking"></ol><p id="error" style="color:#f88"></p></aside>
</main>
<script src="/demo.js"></script>
</body></html>`;

const SCRIPT = `'use strict';
const $ = (id) => document.getElementById(id);
let token = '';
let roomId = '';
let ws;
let lastSeq = '0';
let epoch = '';
let rankingTimer;

function show(err) { $('error').textContent = err ? String(err) : ''; }
function headers(extra) { return Object.assign({ 'content-type': 'application/json' }, token ? { authorization: 'Bearer ' + token } : {}, extra || {}); }
async function api(method, path, body, extra) {
  const res = await fetch(path, { method, headers: headers(extra), body: body === undefined ? undefined : JSON.stringify(body) });
  const data = res.status === 304 ? null : await res.json();
  if (!res.ok) throw new Error((data && data.error && (data.error.field ? data.error.field + ': ' : '') + data.error.message) || res.status);
  return data;
}
function key() { return (self.crypto && crypto.randomUUID) ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2); }

function addEvent(e) {
  if (e.seq && BigInt(e.seq) <= BigInt(lastSeq) && lastSeq !== '0') return;
  if (e.seq) lastSeq = e.seq;
  const li = document.createElement('li');
  li.className = e.type;
  if (e.type === 'chat') li.textContent = e.chat.senderName + ': ' + e.chat.text + (e.chat.mergedCount > 1 ? ' ×' + e.chat.mergedCount : '');
  else if (e.type === 'gift') li.textContent = e.gift.senderName + ' sent gift #' + e.gift.giftId + ' ×' + e.gift.count + ' (combo ' + e.gift.comboCount + ')';
  else if (e.type === 'likes') li.textContent = '♥ ' + e.likes.count + ' (total ' + e.likes.total + ')';
  else if (e.type === 'room') { li.textContent = 'room: ' + e.room.title + (e.room.notice ? ' — ' + e.room.notice : ''); $('title').textContent = e.room.title; }
  else if (e.type === 'notice') { li.textContent = 'notice: ' + e.notice.kind + (e.notice.text ? ' ' + e.notice.text : ''); if (e.notice.kind === 'online_count') $('online').textContent = e.notice.onlineCount; }
  else return;
  $('events').appendChild(li);
  $('events').scrollTop = $('events').scrollHeight;
}

function connect() {
  if (ws) ws.close();
  const q = new URLSearchParams({ format: 'json' });
  if (lastSeq !== '0') { q.set('after', lastSeq); q.set('epoch', epoch); } else q.set('resume', '1');
  if (token) q.set('access_token', token);
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const socket = new WebSocket(proto + '//' + location.host + '/v1/rooms/' + roomId + '/stream?' + q);
  ws = socket;
  socket.onopen = () => { $('status').textContent = 'live in room ' + roomId; };
  socket.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    // The stream position to reconnect from; a state instead of the missed events starts the count again.
    if (msg.type === 'hello') { epoch = msg.epoch || ''; if (msg.recovered === false) lastSeq = '0'; }
    if (msg.type === 'events' || msg.type === 'replay') msg.events.forEach(addEvent);
  };
  socket.onclose = (c) => {
    if (ws !== socket) return;
    $('status').textContent = 'disconnected (' + c.code + '), reconnecting';
    setTimeout(connect, 1000 + Math.random() * 2000);
  };
}

async function loadRanking() {
  try {
    const r = await api('GET', '/v1/rooms/' + roomId + '/ranking?period=live&limit=10');
    $('ranking').innerHTML = '';
    r.entries.forEach((e) => { const li = document.createElement('li'); li.textContent = e.name + ' — ' + e.scoreMinor; $('ranking').appendChild(li); });
  } catch (err) { $('ranking').textContent = 'ranking unavailable'; }
}

async function enter() {
  show();
  roomId = $('room').value.trim();
  lastSeq = '0';
  epoch = '';
  $('events').innerHTML = '';
  try {
    const s = await api('GET', '/v1/rooms/' + roomId);
    $('title').textContent = s.room.title + (s.room.live ? ' (live)' : ' (offline)');
    $('online').textContent = s.onlineCount;
    $('degraded').textContent = s.degraded.length ? 'degraded: ' + s.degraded.join(', ') : '';
    $('gifts').innerHTML = '';
    s.gifts.forEach((g) => {
      const b = document.createElement('button');
      b.textContent = 'Send ' + g.name + ' (' + g.priceMinor + ')';
      b.dataset.giftId = g.id;
      b.className = 'gift';
      b.onclick = () => api('POST', '/v1/rooms/' + roomId + '/gifts', { giftId: g.id, count: 1, expectedUnitPriceMinor: g.priceMinor }, { 'idempotency-key': key() }).then(() => show(), show);
      $('gifts').appendChild(b);
    });
    (s.messages || []).forEach(addEvent);
    connect();
    clearInterval(rankingTimer);
    loadRanking();
    rankingTimer = setInterval(loadRanking, 5000);
  } catch (err) { show(err); }
}

$('signin').onclick = async () => {
  try {
    token = (await api('POST', '/demo/token', { userId: $('user').value.trim(), role: $('role').value, name: $('name').value.trim() })).token;
    $('status').textContent = 'signed in as ' + $('name').value + ' (' + $('role').value + ')';
    show();
  } catch (err) { show(err); }
};
$('enter').onclick = enter;
$('create').onclick = async () => {
  try {
    const r = await api('POST', '/v1/rooms', { title: 'Demo room ' + new Date().toLocaleTimeString() }, { 'idempotency-key': key() });
    await api('POST', '/v1/rooms/' + r.room.id + '/live');
    $('room').value = r.room.id;
    enter();
  } catch (err) { show(err); }
};
$('chat').onsubmit = (ev) => {
  ev.preventDefault();
  const text = $('text').value;
  if (!text.trim()) return;
  api('POST', '/v1/rooms/' + roomId + '/chat', { text }).then(() => { $('text').value = ''; show(); }, show);
};
const fromUrl = new URLSearchParams(location.search).get('room');
if (fromUrl) { $('room').value = fromUrl; }
`;
