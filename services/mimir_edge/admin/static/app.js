// Admin UI of Mimir Edge Enforcement: a plain ES module, no dependencies, no build step.
// Every figure shown comes from the JSON API under /api/ (see ../openapi.yaml); absent ones show "—".
// API strings (tenant ids, reasons, errors) only ever reach the page through textContent/attributes.

const REFRESH_MS = 5000;
const FETCH_TIMEOUT_MS = 15000;
const SEARCH_DEBOUNCE_MS = 250;
const ACTIVE_DENIAL_MS = 60_000; // a (tenant, reason) quiet for a minute ends its run of denials
const SVG_NS = 'http://www.w3.org/2000/svg';
const PAGE_NAMES = ['overview', 'tenants', 'tenant', 'denials', 'system'];
const OUTCOMES = ['allowed', 'denied', 'shadow_denied', 'failure_allowed', 'failure_denied', 'rejected', 'non_elected'];
const MAIN_OUTCOMES = ['allowed', 'denied', 'shadow_denied'];
// Enforced limit → its Mimir setting, which is also the override body's field name.
const MIMIR_FIELD = { ingestion_rate: 'ingestion_rate', ingestion_burst: 'ingestion_burst_size', request_rate: 'request_rate', request_burst: 'request_burst_size' };
const LIMIT_FIELDS = Object.keys(MIMIR_FIELD);
const OVERRIDE_BODY_FIELDS = Object.values(MIMIR_FIELD);
const TOKEN_KEY = 'mee.admin.token';
const WINDOW_KEY = 'mee.admin.window';

/* ---------------------------------------------------------------- DOM helpers */

function build(ns, tag, attrs, children) {
  const el = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (!ns && (key === 'value' || key === 'selected')) el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  return addKids(el, children);
}
function addKids(el, kids) {
  for (const kid of kids.flat(Infinity)) if (kid != null && kid !== false) el.append(kid instanceof Node ? kid : String(kid));
  return el;
}
/** Replace an element's content; null/false are skipped and arrays flattened, as in h(). */
const fill = (el, ...kids) => { el.replaceChildren(); return addKids(el, kids); };
const h = (tag, attrs, ...children) => build(null, tag, attrs, children);
const s = (tag, attrs, ...children) => build(SVG_NS, tag, attrs, children);
const $ = (selector, root = document) => root.querySelector(selector);

// Web storage can be disabled or full: neither is worth a message.
function stored(kind, key, fallback) { try { return window[kind].getItem(key) ?? fallback; } catch { return fallback; } }
function store(kind, key, value) { try { window[kind].setItem(key, value); } catch { /* ignored */ } }

/* ---------------------------------------------------------------- formatting */

const isNum = (v) => v != null && v !== '' && typeof v !== 'boolean' && Number.isFinite(Number(v));
const exact = (v) => (isNum(v) ? String(Number(v)) : '—');

function fmtNum(v) {
  if (!isNum(v)) return '—';
  const n = Number(v), a = Math.abs(n);
  if (a < 1000) return String(Number(n.toPrecision(3)));
  const [unit, size] = [['T', 1e12], ['G', 1e9], ['M', 1e6], ['k', 1e3]].find(([, sz]) => a >= sz);
  const x = n / size;
  return (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(1)).replace(/\.0$/, '') + unit;
}
const fmtRate = (v) => (isNum(v) ? `${fmtNum(v)}/s` : '—');
const fmtPct = (u) => (isNum(u) ? `${u * 100 >= 10 ? Math.round(u * 100) : (u * 100).toFixed(1)} %` : '—');
const share = (part, total) => (isNum(part) && isNum(total) && Number(total) > 0 ? fmtPct(part / total) : '—');
const fmtMs = (v) => (isNum(v) ? `${Number(v).toFixed(Number(v) < 10 ? 2 : 0)} ms` : '—');

function fmtBytes(v) {
  if (!isNum(v)) return '—';
  const i = Math.min(3, Math.floor(Math.log2(Math.max(1, Number(v))) / 10));
  return `${(Number(v) / 1024 ** i).toFixed(i ? 1 : 0)} ${['B', 'KiB', 'MiB', 'GiB'][i]}`;
}

/** 42 s, 4 min 12 s, 25 min, 3 h 5 min, 2 d 4 h. */
function fmtDur(sec) {
  if (!isNum(sec)) return '—';
  const t = Math.max(0, Math.round(Number(sec)));
  const two = (a, ua, b, ub) => (b ? `${a} ${ua} ${b} ${ub}` : `${a} ${ua}`);
  if (t < 60) return `${t} s`;
  if (t < 3600) return two(Math.floor(t / 60), 'min', t < 600 ? t % 60 : 0, 's');
  if (t < 2 * 86400) return two(Math.floor(t / 3600), 'h', Math.floor((t % 3600) / 60), 'min');
  return two(Math.floor(t / 86400), 'd', Math.floor((t % 86400) / 3600), 'h');
}

const pad = (n) => String(n).padStart(2, '0');
function fmtClock(ms, seconds = true) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}${seconds ? `:${pad(d.getSeconds())}` : ''}`;
}
function fmtAbs(ms) {
  if (!isNum(ms) || Number(ms) <= 0) return '';
  const d = new Date(Number(ms));
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return `${date} ${fmtClock(d)} local · ${d.toISOString()}`;
}
function relText(ms) {
  const ago = (Date.now() - Number(ms)) / 1000;
  if (ago > -2 && ago < 1) return 'just now';
  return ago >= 0 ? `${fmtDur(ago)} ago` : `in ${fmtDur(-ago)}`;
}
/** "12 s ago", kept current by the ticker, with the absolute time on hover. */
function timeAgo(ms) {
  if (!isNum(ms) || Number(ms) <= 0) return h('span', { class: 'muted' }, '—');
  const n = Number(ms);
  return h('time', { datetime: new Date(n).toISOString(), title: fmtAbs(n), 'data-ms': n }, relText(n));
}

/* ---------------------------------------------------------------- small components */

const badge = (text, tone = '', title = null) => h('span', { class: `badge ${tone}`, title }, text);
const muted = (text) => h('span', { class: 'muted' }, text);
const loading = (text = 'Loading…') => h('p', { class: 'placeholder muted' }, text);
const tenantHref = (id) => `#/tenants/${encodeURIComponent(id)}`;
const tenantLink = (id) => (id ? h('a', { href: tenantHref(id), class: 'tenant-link mono' }, id) : muted('(no tenant id)'));
const numCell = (v, attrs = {}) => h('td', { class: 'num', title: exact(v), ...attrs }, fmtNum(v));

function panel(title, ...body) {
  const attrs = typeof title === 'object' && title && !(title instanceof Node) ? title : { title };
  const { title: heading, extra, ...rest } = attrs;
  return h('section', { class: 'panel', ...rest },
    h('header', { class: 'panel-head' }, h('h2', {}, heading), extra ?? null),
    h('div', { class: 'panel-body' }, ...body));
}

function pageHead(title, ...subtitle) {
  return h('div', { class: 'page-head' }, h('h1', {}, title), h('p', { class: 'muted' }, ...subtitle));
}

/** columns: [{label, num?, title?}]; rows: <tr> elements. */
function table(attrs, columns, rows, emptyText) {
  const body = rows.length ? rows : [h('tr', { class: 'empty' }, h('td', { colspan: columns.length }, emptyText))];
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'data', ...attrs },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : null, title: c.title }, c.label)))),
      h('tbody', {}, body)));
}

/** [[label, value], …] as a compact definition list; values are nodes or text. */
function kv(pairs, attrs = {}) {
  return h('dl', { class: 'kv', ...attrs },
    pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v == null || v === '' ? '—' : v)]));
}

function pill(tone, name, text, href) {
  return h('a', { class: `pill ${tone}`, href },
    h('span', { class: 'dot', 'aria-hidden': 'true' }), h('span', { class: 'pill-name' }, name), text);
}

/** A small horizontal bar for a fraction (capped at 100 %), with its text. */
function meter(f, tone, text, title = null) {
  const width = isNum(f) ? Math.min(100, Math.max(0, f * 100)).toFixed(1) : 0;
  return h('span', { class: `util ${tone}`, title },
    h('span', { class: 'util-bar' }, h('span', { class: 'util-fill', style: `width:${width}%` })), h('span', { class: 'util-text' }, text));
}
const utilBar = (u) => (isNum(u) ? meter(u, u > 1 ? 'bad' : u >= 0.8 ? 'warn' : 'ok', fmtPct(u), `${(u * 100).toFixed(2)} % of ingestion_rate`) : muted('—'));

const DECISION_TONE = { denied: 'bad', failure_denied: 'bad', shadow_denied: 'warn', rejected: 'muted', non_elected: 'info' };
const decisionBadge = (d) => badge(d || '—', DECISION_TONE[d] || '');

/* ---------------------------------------------------------------- charts */

const CW = 720, CH = 220, PAD = { l: 58, r: 14, t: 14, b: 26 };
const TIME_STEPS = [10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200];

function niceStep(raw) {
  const exp = 10 ** Math.floor(Math.log10(raw));
  const f = raw / exp;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * exp;
}

/** SVG path through [x, y] points; a null point (no data) lifts the pen. */
function pathD(points) {
  let d = '';
  points.forEach((p, i) => { if (p) d += `${i && points[i - 1] ? 'L' : 'M'}${p[0].toFixed(1)} ${p[1].toFixed(1)}`; });
  return d;
}

/** Last complete bucket: the newest one is still filling. */
const lastComplete = (values) => (values.length > 1 ? values[values.length - 2] : values[0]);

/** The one line chart: times are bucket starts (Unix s), lines [{key, label, values}] rates (null = no
 * data); opts.limit adds a dashed horizontal line. The newest bucket is still filling: its segment is dashed. */
function lineChart(testid, times, lines, { unit = '/s', limit = null, ariaLabel = '' } = {}) {
  const n = times.length;
  const pw = CW - PAD.l - PAD.r, ph = CH - PAD.t - PAD.b;
  const svg = s('svg', { viewBox: `0 0 ${CW} ${CH}`, class: 'chart', 'data-testid': testid, role: 'img', 'aria-label': ariaLabel });
  let max = 0;
  for (const line of lines) for (const v of line.values) if (v != null && v > max) max = v;
  if (isNum(limit)) max = Math.max(max, Number(limit));
  const step = niceStep(max > 0 ? max / 4 : 1);
  const top = step * Math.max(1, Math.ceil(max / step - 1e-9));
  const t0 = times[0], span = n > 1 ? times[n - 1] - t0 : 0;
  const x = (t) => PAD.l + (span > 0 ? ((t - t0) / span) * pw : pw / 2);
  const y = (v) => PAD.t + ph - (v / top) * ph;

  for (let i = 0; i * step <= top * (1 + 1e-9); i++) {
    const v = i * step;
    svg.append(s('line', { class: 'grid', x1: PAD.l, x2: CW - PAD.r, y1: y(v), y2: y(v) }),
      s('text', { class: 'axis', x: PAD.l - 6, y: y(v) + 4, 'text-anchor': 'end' }, `${fmtNum(v)}${unit}`));
  }
  svg.append(s('line', { class: 'axis-line', x1: PAD.l, x2: CW - PAD.r, y1: PAD.t + ph, y2: PAD.t + ph }));
  if (n === 0) {
    svg.append(s('text', { class: 'axis', x: PAD.l + pw / 2, y: PAD.t + ph / 2, 'text-anchor': 'middle' }, 'no data in this window'));
  } else {
    const every = TIME_STEPS.find((iv) => span / iv <= 6) ?? 86400;
    for (let t = Math.ceil(t0 / every) * every; t <= t0 + span; t += every) {
      svg.append(s('text', { class: 'axis', x: x(t), y: CH - 8, 'text-anchor': 'middle' }, fmtClock(t * 1000, every < 60)));
    }
  }
  if (isNum(limit)) {
    svg.append(s('line', { class: 'limit-line', 'data-testid': 'limit-line', x1: PAD.l, x2: CW - PAD.r, y1: y(Number(limit)), y2: y(Number(limit)) }),
      s('text', { class: 'limit-label', x: CW - PAD.r - 4, y: y(Number(limit)) - 5, 'text-anchor': 'end' }, `limit ${fmtNum(limit)}${unit}`));
  }
  for (const line of lines) {
    const pts = line.values.map((v, i) => (v == null ? null : [x(times[i]), y(v)]));
    svg.append(s('path', { class: `line c-${line.key}`, d: pathD(n > 1 ? pts.slice(0, n - 1) : pts) }));
    if (n > 1) svg.append(s('path', { class: `line partial c-${line.key}`, d: pathD(pts.slice(n - 2)) }));
    const last = n > 1 ? pts[n - 2] : pts[0];
    if (last) svg.append(s('circle', { class: `dot c-${line.key}`, cx: last[0], cy: last[1], r: 2.5 }));
  }
  // Hover: one transparent column per bucket with a native tooltip.
  const colW = n > 1 ? pw / (n - 1) : pw;
  times.forEach((t, i) => {
    const text = [`${fmtClock(t * 1000)}${i === n - 1 ? ' (in progress)' : ''}`,
      ...lines.map((l) => `${l.label}: ${fmtNum(l.values[i])}${unit}`)].join('\n');
    svg.append(s('rect', { class: 'hover', x: Math.max(PAD.l, x(t) - colW / 2), y: PAD.t, width: colW, height: ph }, s('title', {}, text)));
  });
  const legend = h('div', { class: 'legend' },
    lines.map((l) => h('span', { class: `legend-item c-${l.key}`, title: `peak ${fmtNum(Math.max(0, ...l.values.filter(isNum)))}${unit} in the window` },
      h('i', { class: 'swatch' }), l.label, h('b', {}, `${fmtNum(lastComplete(l.values))}${unit}`))),
    isNum(limit) ? h('span', { class: 'legend-item limit-key' }, h('i', { class: 'swatch' }), 'limit', h('b', {}, `${fmtNum(limit)}${unit}`)) : null);
  return h('div', { class: 'chart-wrap' }, svg, legend);
}

const perSecond = (count, stepS) => (isNum(count) && Number(stepS) > 0 ? Number(count) / Number(stepS) : null);
const sumOf = (obj, keys) => (obj ? keys.reduce((acc, k) => acc + (Number(obj[k]) || 0), 0) : null);

/** A chart of series[kind] (requests or items) by outcome; rarely-seen outcomes only when present. */
function outcomeChart(testid, series, kind, ariaLabel) {
  const keys = OUTCOMES.filter((o) => MAIN_OUTCOMES.includes(o) || series.some((p) => Number(p[kind]?.[o]) > 0));
  const lines = keys.map((key) => ({ key, label: key, values: series.map((p) => perSecond(p[kind]?.[key], p.step_s)) }));
  return lineChart(testid, series.map((p) => p.t), lines, { ariaLabel });
}

/* ---------------------------------------------------------------- API */

class HttpError extends Error { constructor(status, message) { super(message); this.status = status; } }

async function api(path, { method = 'GET', token = '', body, signal, accept = [] } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, signal, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    if (err?.name === 'AbortError' || err?.name === 'TimeoutError') throw err;
    throw new HttpError(0, `network error: ${err?.message || err}`);
  }
  let data = null;
  try { data = await res.json(); } catch { /* not JSON: described by the status below */ }
  if (!res.ok && !accept.includes(res.status)) {
    const text = data && typeof data.error === 'string' ? data.error : res.statusText;
    throw new HttpError(res.status, `HTTP ${res.status}: ${text || 'request failed'}`);
  }
  return data;
}

const query = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v != null && v !== '')).toString();

/* ---------------------------------------------------------------- state, routing, refresh loop */

const state = {
  route: { page: 'overview' },
  gen: 0, // bumped whenever what is shown changes, so older answers are dropped
  window: [300, 900, 3600, 21600, 86400].includes(Number(stored('localStorage', WINDOW_KEY, ''))) ? Number(stored('localStorage', WINDOW_KEY, '')) : 3600,
  tenants: { q: '', sort: 'items_per_s', order: 'desc', page: 1, per_page: 50 },
  lastOk: 0,
};
let inflight = null; // AbortController of the one fetch in progress
let rerun = false;
let timer = 0;

function parseRoute() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [name, ...rest] = raw.split('/');
  const idPart = rest.join('/');
  if (name === 'tenants' && idPart) {
    let id = idPart;
    try { id = decodeURIComponent(idPart); } catch { /* keep it as typed */ }
    return { page: 'tenant', id };
  }
  return { page: ['overview', 'tenants', 'denials', 'system'].includes(name) ? name : 'overview' };
}

function onRoute() {
  const route = parseRoute();
  if (route.page === 'overview' && !location.hash.startsWith('#/overview')) history.replaceState(null, '', '#/overview');
  const previous = state.route;
  state.route = route;
  for (const name of PAGE_NAMES) {
    const root = $(`#page-${name}`);
    root.hidden = name !== route.page;
    // Leave no stale rows behind in hidden pages (selectors stay unambiguous, memory stays flat).
    if (name !== route.page && name === previous.page) PAGES[name].leave?.(root);
  }
  const nav = route.page === 'tenant' ? 'tenants' : route.page;
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  PAGES[route.page].enter(route, $(`#page-${route.page}`));
  document.title = `${route.page === 'tenant' ? route.id : route.page[0].toUpperCase() + route.page.slice(1)} · Mimir Edge Enforcement`;
  reload();
}

/** Drop whatever is in flight (it answers for something no longer shown) and fetch now. */
function reload() {
  state.gen++;
  if (inflight) { rerun = true; inflight.abort(); } else refresh();
}

function refresh() {
  clearTimeout(timer);
  if (inflight) { rerun = true; return; }
  const route = state.route, gen = state.gen, page = PAGES[route.page];
  const ctrl = (inflight = new AbortController());
  const signal = AbortSignal.any([ctrl.signal, AbortSignal.timeout(FETCH_TIMEOUT_MS)]);
  Promise.resolve().then(() => page.load(route, signal))
    .then((data) => {
      if (ctrl.signal.aborted || gen !== state.gen) return;
      const y = window.scrollY;
      page.render(data, route, $(`#page-${route.page}`));
      if (window.scrollY !== y) window.scrollTo(0, y);
      state.lastOk = Date.now();
      showError(null);
      document.body.dataset.page = route.page;
      document.body.dataset.renders = String((Number(document.body.dataset.renders) || 0) + 1);
    })
    .catch((err) => { if (!ctrl.signal.aborted && gen === state.gen) showError(err); })
    .finally(() => {
      inflight = null;
      if (rerun) { rerun = false; refresh(); } else schedule();
    });
}

function schedule() {
  clearTimeout(timer);
  if (!document.hidden) timer = setTimeout(refresh, REFRESH_MS);
  setLive();
}

function setLive(failed = false) {
  const el = $('#live-status');
  const [tone, ...text] = document.hidden ? ['paused', 'paused (tab hidden)']
    : failed || !$('[data-testid="error-banner"]').hidden ? ['stale', 'stale', state.lastOk ? [' · ', timeAgo(state.lastOk)] : '']
      : state.lastOk ? ['ok', 'live · updated ', timeAgo(state.lastOk)] : ['', 'connecting…'];
  el.className = `live ${tone}`;
  fill(el, ...text);
}

function errorText(err) {
  if (err?.name === 'TimeoutError') return `no answer within ${FETCH_TIMEOUT_MS / 1000} s`;
  return err?.message || String(err);
}

function showError(err) {
  const banner = $('[data-testid="error-banner"]');
  if (!err) { banner.hidden = true; banner.replaceChildren(); setLive(); return; }
  fill(banner, h('strong', {}, 'Refresh failed: '), errorText(err),
    state.lastOk ? [' — the page shows data from ', timeAgo(state.lastOk), '.'] : '', ' Retrying every 5 s.');
  banner.hidden = false;
  const placeholder = $(`#page-${state.route.page} .placeholder`);
  if (placeholder) placeholder.textContent = `Could not load this page: ${errorText(err)}`;
  setLive(true);
}

/* ---------------------------------------------------------------- shared blocks */

function healthStrip(ov) {
  const replicas = ov.replicas || [], redis = ov.redis || {}, sync = ov.sync || {}, overrides = ov.overrides || [];
  const open = replicas.filter((r) => r.breaker === 'open').length;
  const shadow = replicas.filter((r) => r.shadow === 'true').length;
  const syncOk = sync.seen && sync.condition === 'ok' && !sync.last_error;
  return h('div', { class: 'health', 'data-testid': 'health-strip' },
    pill(replicas.length ? (open ? 'warn' : 'ok') : 'bad', 'Replicas',
      `${replicas.length} live${open ? ` · ${open} breaker open` : ''}${shadow ? ` · ${shadow} in shadow mode` : ''}`, '#/system'),
    pill(redis.ok ? 'ok' : 'bad', 'Redis', redis.ok ? `ok · ${fmtMs(redis.latency_ms)}` : `unreachable${redis.error ? `: ${redis.error}` : ''}`, '#/system'),
    pill(syncOk ? 'ok' : sync.seen ? 'bad' : 'warn', 'Sync',
      sync.seen ? `${sync.condition || '—'} · ${isNum(sync.age_s) ? `${fmtDur(sync.age_s)} ago` : '—'}` : 'never ran', '#/system'),
    pill(overrides.length ? 'warn' : 'ok', 'Overrides', `${overrides.length} active`, '#/system'));
}

function denialsTable(list, { withTenant = true, testid = null } = {}) {
  const now = Date.now();
  const columns = [withTenant && { label: 'Tenant' }, { label: 'Reason' }, { label: 'Decision' },
    { label: 'Since', title: 'start of this run of denials (a quiet minute ends one)' }, { label: 'Last seen' },
    { label: 'Requests', num: true, title: 'requests with this reason in the window' },
    { label: 'Limits (rate / burst)', num: true, title: 'ingestion_rate / ingestion_burst at the last denial' },
    { label: 'Replica' }].filter(Boolean);
  const rows = list.map((d) => {
    const active = now - Number(d.last_ms) < ACTIVE_DENIAL_MS, lim = d.limits || {};
    return h('tr', { 'data-tenant': withTenant ? d.tenant : null, 'data-reason': d.reason, class: active ? 'active' : null },
      withTenant && h('td', {}, h('span', { class: 'active-dot', title: active ? 'denied within the last minute' : null }), tenantLink(d.tenant)),
      h('td', { class: 'mono' }, d.reason), h('td', {}, decisionBadge(d.decision)),
      h('td', {}, timeAgo(d.since_ms), isNum(d.since_ms) && isNum(d.last_ms) ? muted(` · for ${fmtDur((d.last_ms - d.since_ms) / 1000)}`) : null),
      h('td', {}, timeAgo(d.last_ms)), numCell(d.requests_in_window),
      h('td', { class: 'num' }, isNum(lim.ingestion_rate) || isNum(lim.ingestion_burst) ? `${fmtRate(lim.ingestion_rate)} / ${fmtNum(lim.ingestion_burst)}` : '—'),
      h('td', { class: 'mono small' }, d.replica || '—'));
  });
  return table({ 'data-testid': testid }, columns, rows, 'No denials recorded.');
}

/* ---------------------------------------------------------------- page: overview */

function statCard({ name, value, testid, tone = '', sub = [] }) {
  return h('div', { class: `card ${tone}` },
    h('div', { class: 'card-label' }, name),
    h('div', { class: 'card-value', title: exact(value) }, fmtNum(value)),
    h('div', { class: 'card-sub' }, testid ? h('span', { class: 'mono exact', 'data-testid': testid, title: 'exact count' }, exact(value)) : null, ...sub));
}

function overviewCards(totals, rates) {
  const rq = totals?.requests || {}, it = totals?.items || {};
  const rr = rates?.requests_per_s || {}, ir = rates?.items_per_s || {};
  const now = (v) => h('span', { class: 'rate', title: `over the last ${fmtDur(rates?.window_s)}` }, `${fmtRate(v)} now`);
  const card = (name, key, tone, testid) => statCard({
    name, value: rq[key], testid, tone: Number(rq[key]) > 0 ? tone : '',
    sub: [h('span', {}, `${share(rq[key], rq.total)} of requests`), now(rr[key])],
  });
  return h('div', { class: 'cards' },
    statCard({ name: 'Requests', value: rq.total, testid: 'fleet-requests-total', sub: [now(rr.total)] }),
    card('Allowed', 'allowed', ''), card('Denied', 'denied', 'bad', 'fleet-denied-total'), card('Shadow-denied', 'shadow_denied', 'warn'),
    card('Failure-allowed', 'failure_allowed', 'warn'), card('Failure-denied', 'failure_denied', 'bad'), card('Rejected', 'rejected', ''),
    statCard({ name: 'Items', value: it.total, sub: [h('span', {}, `${fmtNum(it.denied)} denied`), h('span', { class: 'rate' }, `${fmtRate(ir.total)} now`)] }));
}

function topTenantsTable(rows) {
  const windowS = rows[0]?.window_s;
  const columns = [{ label: 'Tenant' }, { label: 'Requests', num: true }, { label: 'Items', num: true },
    { label: 'Items/s', num: true, title: 'average over the table window' },
    { label: 'Denied req.', num: true, title: 'denied + failure-denied requests' },
    { label: 'Would-deny', num: true, title: 'denied + shadow-denied requests' }];
  const trs = rows.map((t) => h('tr', { 'data-tenant': t.tenant },
    h('td', {}, tenantLink(t.tenant)), numCell(t.requests), numCell(t.items),
    h('td', { class: 'num' }, fmtRate(isNum(t.window_s) && t.window_s > 0 ? t.items / t.window_s : null)),
    numCell(t.denied_requests, { class: `num ${t.denied_requests > 0 ? 'bad-text' : ''}` }),
    numCell(t.would_deny_requests, { class: `num ${t.would_deny_requests > 0 ? 'warn-text' : ''}` })));
  return { windowS, node: table({ 'data-testid': 'top-tenants' }, columns, trs, 'No tenant traffic.') };
}

function limitedNow(denials) {
  const recent = denials.filter((d) => Date.now() - Number(d.last_ms) < 2 * ACTIVE_DENIAL_MS).slice(0, 10);
  if (!recent.length) return h('p', { class: 'calm' }, 'Nobody has been limited in the last 2 min.');
  return h('ul', { class: 'limited' }, recent.map((d) => h('li', {},
    tenantLink(d.tenant), ' ', h('span', { class: 'mono small' }, d.reason), ' ', decisionBadge(d.decision),
    h('span', { class: 'muted small' }, ' since ', timeAgo(d.since_ms)))));
}

/** Pages rebuilt whole on every refresh: a placeholder until the first answer, emptied on leaving. */
const wholePage = (page) => ({ enter(route, root) { if (!root.firstChild) fill(root, loading()); }, leave(root) { root.replaceChildren(); }, ...page });

const overviewPage = wholePage({
  async load(route, signal) {
    // One request at a time, here as everywhere: a slow Redis never gets a pile of them.
    const ov = await api(`/api/overview?${query({ window: state.window })}`, { signal });
    return { ov, den: await api('/api/denials?limit=50&window=300', { signal }) };
  },
  render({ ov, den }, route, root) {
    const series = ov.series || [];
    const top = topTenantsTable(ov.top_tenants || []);
    fill(root,
      pageHead('Fleet overview', `last ${fmtDur(ov.window_s)} · whole fleet, answered by replica `,
        h('span', { class: 'mono' }, ov.served_by || '—'), ' · generated ', timeAgo(ov.generated_ms)),
      healthStrip(ov),
      overviewCards(ov.totals, ov.rates),
      h('div', { class: 'grid-2' },
        panel({ title: 'Requests/s by decision', extra: muted(`${series[0]?.step_s ?? '—'} s buckets`) },
          outcomeChart('chart-requests', series, 'requests', 'Requests per second by decision')),
        panel({ title: 'Items/s by decision', extra: muted('samples + exemplars + metadata') },
          outcomeChart('chart-items', series, 'items', 'Items per second by decision'))),
      h('div', { class: 'grid-2' },
        panel({ title: 'Top tenants by items', extra: muted(isNum(top.windowS) ? `last ${fmtDur(top.windowS)}` : '') }, top.node),
        panel({ title: 'Limited now', extra: h('a', { href: '#/denials' }, 'all denials →') }, limitedNow(den?.denials || []))));
  },
});

/* ---------------------------------------------------------------- page: tenants */

const TENANT_COLUMNS = [
  { key: 'tenant', label: 'Tenant', sort: 'tenant' },
  { key: 'source', label: 'Source', title: 'overrides: in the runtime overrides; defaults: Mimir defaults' },
  { key: 'ingestion_rate', label: 'Ingestion rate', sort: 'ingestion_rate', num: true, title: 'enforced ingestion_rate (items/s)' },
  { key: 'burst', label: 'Burst', num: true, title: 'enforced ingestion burst (items)' },
  { key: 'items_per_s', label: 'Items/s now', sort: 'items_per_s', num: true, title: 'offered items/s over the last minute' },
  { key: 'requests_per_s', label: 'Req/s now', sort: 'requests_per_s', num: true, title: 'requests/s over the last minute' },
  { key: 'utilisation', label: 'Utilisation', sort: 'utilisation', title: 'offered items/s ÷ ingestion_rate' },
  { key: 'denied_requests', label: 'Denied (incl. shadow)', sort: 'denied_requests', num: true, title: 'denied + shadow-denied requests in the window' },
  { key: 'override', label: 'Override' },
];
const T = {}; // the tenants page's persistent elements (the search box keeps focus across refreshes)
let searchTimer = 0;

function tenantsSkeleton(root) {
  const ts = state.tenants;
  T.search = h('input', {
    type: 'search', 'data-testid': 'tenant-search', placeholder: 'Filter tenants by id…', value: ts.q,
    'aria-label': 'Filter tenants by id', autocomplete: 'off', spellcheck: 'false', maxlength: 200,
    oninput: () => { clearTimeout(searchTimer); searchTimer = setTimeout(applySearch, SEARCH_DEBOUNCE_MS); },
  });
  T.perPage = h('select', { 'aria-label': 'Rows per page', onchange: () => { ts.per_page = Number(T.perPage.value); ts.page = 1; reload(); } },
    [25, 50, 100, 200].map((n) => h('option', { value: n, selected: n === ts.per_page }, `${n} / page`)));
  T.heads = TENANT_COLUMNS.map((c) => h('th', {
    'data-sort': c.sort, class: [c.num && 'num', c.sort && 'sortable'].filter(Boolean).join(' ') || null, title: c.title,
    tabindex: c.sort ? 0 : null, onclick: c.sort ? () => sortBy(c.sort) : null,
    onkeydown: c.sort ? (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sortBy(c.sort); } } : null,
  }, h('span', { class: 'th-label' }, c.label), c.sort ? h('span', { class: 'sort-ind', 'aria-hidden': 'true' }) : null));
  T.tbody = h('tbody', {}, h('tr', { class: 'empty' }, h('td', { colspan: TENANT_COLUMNS.length }, loading())));
  T.prev = h('button', { type: 'button', class: 'btn', 'data-testid': 'page-prev', onclick: () => { ts.page = Math.max(1, ts.page - 1); reload(); } }, '‹ Prev');
  T.next = h('button', { type: 'button', class: 'btn', 'data-testid': 'page-next', onclick: () => { ts.page += 1; reload(); } }, 'Next ›');
  T.info = h('span', { class: 'page-info', 'data-testid': 'page-info' }, '—');
  T.sub = h('p', { class: 'muted' }, '');
  fill(root,
    h('div', { class: 'page-head' }, h('h1', {}, 'Tenants'), T.sub),
    h('div', { class: 'toolbar' }, T.search, T.perPage),
    h('div', { class: 'table-wrap panel' }, h('table', { class: 'data', 'data-testid': 'tenants-table' },
      h('thead', {}, h('tr', {}, T.heads)), T.tbody)),
    h('div', { class: 'pager' }, T.prev, T.info, T.next));
}

function applySearch() {
  const ts = state.tenants, q = T.search.value.trim();
  if (q !== ts.q) { ts.q = q; ts.page = 1; reload(); }
}

function sortBy(key) {
  const ts = state.tenants;
  if (ts.sort === key) ts.order = ts.order === 'asc' ? 'desc' : 'asc';
  else { ts.sort = key; ts.order = key === 'tenant' ? 'asc' : 'desc'; }
  ts.page = 1;
  reload();
}

function tenantRow(t) {
  const lim = t.limits || {}, win = t.window || {}, o = t.override;
  const overrideTitle = o ? [`${o.mode} · ${o.reason}`, `by ${o.by || '—'}, expires in ${fmtDur(o.expires_in_s)}`,
    ...Object.entries(o.limits || {}).map(([k, v]) => `${k}: ${exact(v)}`)].join('\n') : null;
  return h('tr', { 'data-tenant': t.tenant, class: Number(t.utilisation) > 1 ? 'over' : null },
    h('td', { 'data-col': 'tenant' }, tenantLink(t.tenant)),
    h('td', { 'data-col': 'source' }, badge(t.source || '—', t.source === 'overrides' ? 'info' : 'muted')),
    h('td', { 'data-col': 'ingestion_rate', class: 'num', title: exact(lim.ingestion_rate) }, fmtRate(lim.ingestion_rate)),
    h('td', { 'data-col': 'burst', class: 'num', title: exact(lim.ingestion_burst) }, fmtNum(lim.ingestion_burst)),
    h('td', { 'data-col': 'items_per_s', class: 'num', title: exact(t.usage?.items_per_s) }, fmtRate(t.usage?.items_per_s)),
    h('td', { 'data-col': 'requests_per_s', class: 'num', title: exact(t.usage?.requests_per_s) }, fmtRate(t.usage?.requests_per_s)),
    h('td', { 'data-col': 'utilisation' }, utilBar(t.utilisation)),
    h('td', {
      'data-col': 'denied_requests', class: `num ${win.would_deny_requests > 0 ? 'warn-text' : ''}`,
      title: `denied ${exact(win.denied_requests)} (incl. failure-denied); denied + shadow-denied ${exact(win.would_deny_requests)}`,
    }, exact(win.would_deny_requests)),
    h('td', { 'data-col': 'override' }, o ? badge(`override · ${o.mode}`, o.mode === 'shadow' ? 'warn' : 'bad', overrideTitle) : ''));
}

const tenantsPage = {
  enter(route, root) { if (!T.tbody || !root.contains(T.tbody)) tenantsSkeleton(root); },
  leave() { if (T.tbody) fill(T.tbody, h('tr', { class: 'empty' }, h('td', { colspan: TENANT_COLUMNS.length }, loading()))); },
  load(route, signal) {
    const ts = state.tenants;
    return api(`/api/tenants?${query({ q: ts.q, sort: ts.sort, order: ts.order, page: ts.page, per_page: ts.per_page, window: state.window })}`, { signal });
  },
  render(data) {
    const ts = state.tenants;
    const total = Number(data.total) || 0, perPage = Number(data.per_page) || ts.per_page;
    const pages = Math.max(1, Math.ceil(total / perPage));
    if (ts.page > pages) { ts.page = pages; setTimeout(reload); }
    const rows = (data.tenants || []).map(tenantRow);
    fill(T.tbody, ...(rows.length ? rows
      : [h('tr', { class: 'empty' }, h('td', { colspan: TENANT_COLUMNS.length }, ts.q ? `No tenant id contains “${ts.q}”.` : 'No tenants.'))]));
    for (const th of T.heads.filter((el) => el.dataset.sort)) {
      const on = th.dataset.sort === data.sort, asc = data.order === 'asc';
      th.classList.toggle('sorted', on);
      th.setAttribute('aria-sort', on ? (asc ? 'ascending' : 'descending') : 'none');
      $('.sort-ind', th).textContent = on ? (asc ? '▲' : '▼') : '↕';
    }
    T.info.textContent = `page ${data.page ?? ts.page} of ${pages} · ${total} tenant${total === 1 ? '' : 's'}`;
    T.prev.disabled = (data.page ?? ts.page) <= 1;
    T.next.disabled = (data.page ?? ts.page) >= pages;
    fill(T.sub, `limits and usage now (last ${fmtDur(data.rate_window_s)}); denials over the last ${fmtDur(data.window_s)}`);
  },
};

/* ---------------------------------------------------------------- page: tenant detail */

const D = {}; // the detail page's persistent elements (the override form survives refreshes)
const LIMIT_UNITS = { ingestion_rate: 'items/s', ingestion_burst: 'items', request_rate: 'req/s', request_burst: 'requests' };
const SOURCE_TONE = { emergency_override: 'bad', overrides: 'info', defaults: 'muted' };

function field(text, control, hint = null) {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, text), control, hint ? h('span', { class: 'hint' }, hint) : null);
}

function overrideForm(id) {
  const input = (name, attrs = {}) => h('input', { name, id: `ovr-${name}`, autocomplete: 'off', ...attrs });
  const ttl = input('ttl_seconds', { type: 'number', min: 1, max: 604800, step: 1, value: '3600', inputmode: 'numeric' });
  const presets = h('span', { class: 'presets' }, [['15 min', 900], ['1 h', 3600], ['4 h', 14400], ['24 h', 86400]]
    .map(([text, v]) => h('button', { type: 'button', class: 'btn tiny', onclick: () => { ttl.value = String(v); } }, text)));
  const result = h('p', { class: 'form-result', 'data-testid': 'override-result', role: 'status', 'aria-live': 'polite' });
  const form = h('form', { class: 'override-form', 'data-testid': 'override-form', novalidate: true, onsubmit: (e) => { e.preventDefault(); sendOverride(form, id, 'PUT'); } },
    field('Admin token', input('token', { type: 'password', placeholder: 'bearer token', value: stored('sessionStorage', TOKEN_KEY, ''),
      oninput: (e) => store('sessionStorage', TOKEN_KEY, e.target.value) }), 'kept in this browser tab only'),
    h('div', { class: 'form-row' },
      field('TTL (seconds)', ttl, presets),
      field('Mode', h('select', { name: 'mode', id: 'ovr-mode' }, h('option', { value: 'enforce' }, 'enforce'), h('option', { value: 'shadow' }, 'shadow (count, do not deny)')))),
    field('Reason', input('reason', { type: 'text', maxlength: 500, placeholder: 'e.g. INC-1234: ingestion flood from team-x' })),
    h('fieldset', { class: 'limits-fields' }, h('legend', {}, 'Limits (optional — empty keeps the current one)'),
      OVERRIDE_BODY_FIELDS.map((name) => field(name, input(name, { type: 'number', min: 0, step: name.includes('burst') ? 1 : 'any' })))),
    h('div', { class: 'form-actions' },
      h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'override-submit' }, 'Set override'),
      h('button', { type: 'button', class: 'btn danger', 'data-testid': 'override-remove', onclick: () => sendOverride(form, id, 'DELETE') }, 'Remove override')),
    result);
  return form;
}

async function sendOverride(form, id, method) {
  const result = $('[data-testid="override-result"]', form);
  const el = form.elements;
  let body;
  if (method === 'PUT') {
    body = { reason: el.reason.value, mode: el.mode.value };
    if (el.ttl_seconds.value.trim() !== '') body.ttl_seconds = Number(el.ttl_seconds.value);
    for (const name of OVERRIDE_BODY_FIELDS) if (el[name].value.trim() !== '') body[name] = Number(el[name].value);
  }
  const say = (tone, text) => { result.className = `form-result ${tone}`; result.textContent = text; };
  say('pending', method === 'PUT' ? 'Setting override…' : 'Removing override…');
  const buttons = [...form.querySelectorAll('button')];
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const data = await api(`/api/tenants/${encodeURIComponent(id)}/override`, { method, token: el.token.value.trim(), body, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    say('ok', method === 'PUT' ? `Override set: ${data?.mode ?? '—'}, expires in ${fmtDur(data?.expires_in_s)}. Every replica applies it on the tenant's next request.` : 'Override removed.');
    reload();
  } catch (err) {
    say('error', errorText(err));
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

/** The tenant's own Mimir setting behind an enforced limit (a burst factor replaces the burst size). */
function configured(conf, name) {
  if (!conf) return '—';
  const factor = Number(conf.ingestion_burst_factor);
  if (name === 'ingestion_burst' && factor > 0) return `factor ${exact(factor)} × rate`;
  return exact(conf[MIMIR_FIELD[name]]);
}

function limitsTable(d) {
  const lim = d.limits || {}, sources = d.limit_sources || {}, conf = d.configured_limits;
  const rows = LIMIT_FIELDS.map((name) => h('tr', {},
    h('td', { class: 'mono' }, name),
    h('td', { class: 'num', title: fmtNum(lim[name]) },
      h('span', { class: 'mono strong', 'data-testid': `limit-${name}` }, exact(lim[name])), ' ', muted(LIMIT_UNITS[name]),
      name === 'request_rate' && Number(lim[name]) === 0 ? muted(' (off)') : null),
    h('td', {}, badge(sources[name] || '—', SOURCE_TONE[sources[name]] || '')),
    h('td', { class: 'num mono' }, configured(conf, name))));
  return table({ 'data-testid': 'tenant-limits' }, [{ label: 'Limit' }, { label: 'Enforced', num: true },
    { label: 'Source' }, { label: 'Runtime config', num: true, title: "the tenant's Mimir limits as overrides-sync wrote them" }], rows, '');
}

const CHARGING_HELP = {
  accept_ha_samples: 'HA pairs deduplicated: only the elected replica is charged items',
  ha_cluster_label: 'label naming the HA cluster (first series of a write)',
  ha_replica_label: 'label naming the replica',
  ha_max_clusters: 'new clusters beyond this are refused with 400 (0 = no limit)',
  ha_tracker_failover_timeout: 'seconds of silence from the elected replica before another is elected',
  max_global_exemplars_per_user: 'exemplars are charged only when this is above 0',
  otel_convert_histograms_to_nhcb: 'OTLP classic histograms charged as one native histogram sample per point',
  otel_native_delta_ingestion: 'OTLP delta sums and histograms charged (refused, so free, without it)',
};

function chargingTable(d) {
  const c = d.charging || {}, sources = d.limit_sources || {};
  const show = (v) => (typeof v === 'boolean' ? String(v) : typeof v === 'string' ? v : exact(v));
  const rows = Object.keys(CHARGING_HELP).map((name) => h('tr', {},
    h('td', { class: 'mono', title: CHARGING_HELP[name] }, name),
    h('td', { class: 'mono', 'data-testid': `charging-${name}` }, show(c[name])),
    h('td', {}, badge(sources[name] || '—', SOURCE_TONE[sources[name]] || ''))));
  return table({ 'data-testid': 'tenant-charging' }, [{ label: 'Charging rule' }, { label: 'In force' }, { label: 'Source' }], rows, '');
}

function haClustersBlock(d) {
  const clusters = d.ha_clusters || [];
  if (!clusters.length) {
    return h('p', { class: 'calm' }, d.charging?.accept_ha_samples
      ? 'No HA cluster seen in the last 30 minutes.' : 'HA dedupe is off for this tenant (accept_ha_samples: false).');
  }
  const rows = clusters.map((c) => h('tr', {},
    h('td', { class: 'mono' }, c.cluster),
    h('td', { class: 'mono strong', 'data-testid': `ha-elected-${c.cluster}` }, c.elected_replica),
    h('td', {}, timeAgo(c.last_seen_ms)),
    h('td', { class: 'num mono', 'data-testid': `ha-failovers-${c.cluster}` }, exact(c.failovers))));
  return table({ 'data-testid': 'tenant-ha-clusters' }, [{ label: 'Cluster' }, { label: 'Elected replica' },
    { label: 'Last seen' }, { label: 'Failovers', num: true }], rows, '');
}

function usageBlock(d) {
  const u = d.usage || {}, lim = d.limits || {};
  const overridden = d.limit_sources?.ingestion_rate === 'emergency_override';
  return kv([
    ['Items/s now', h('span', {}, h('b', {}, fmtRate(u.items_per_s)), muted(` offered, of ${fmtRate(lim.ingestion_rate)}`))],
    ['Admitted', fmtRate(u.admitted_items_per_s)],
    ['Utilisation', h('span', {}, utilBar(d.utilisation))],
    ['Requests/s now', h('span', {}, fmtRate(u.requests_per_s), muted(Number(lim.request_rate) > 0 ? ` of ${fmtRate(lim.request_rate)}` : ' (no request limit)'))],
  ], { class: 'kv usage' });
}

function totalsBlock(totals, windowS) {
  const rq = totals?.requests || {}, it = totals?.items || {};
  const rows = [...OUTCOMES, 'total'].map((o) => h('tr', { class: o === 'total' ? 'total' : null },
    h('td', {}, o === 'total' ? 'total' : decisionBadge(o)),
    h('td', { class: 'num mono', title: fmtNum(rq[o]) }, o === 'total' ? h('span', { 'data-testid': 'tenant-requests-total' }, exact(rq[o]))
      : o === 'denied' ? h('span', { 'data-testid': 'tenant-denied-total' }, exact(rq[o])) : exact(rq[o])),
    h('td', { class: 'num mono', title: fmtNum(it[o]) }, exact(it[o]))));
  const reasons = Object.entries(totals?.not_allowed_by_reason || {});
  return [table({}, [{ label: `Decision (last ${fmtDur(windowS)})` }, { label: 'Requests', num: true }, { label: 'Items', num: true }], rows, ''),
    h('h3', {}, 'By protocol'), protocolTable(totals?.by_protocol || {}),
    h('h3', {}, 'Not allowed, by reason'),
    reasons.length ? kv(reasons.map(([k, v]) => [h('span', { class: 'mono' }, k), h('span', { title: exact(v) }, fmtNum(v))])) : h('p', { class: 'calm' }, 'none')];
}

const PROTOCOLS = [['remote_write', 'remote_write'], ['otlp', 'OTLP']];

/** Requests and items per write protocol as the RLS recorded them, and how many of each were denied. */
function protocolTable(byProtocol) {
  const rows = PROTOCOLS.map(([key, label]) => {
    const p = byProtocol[key] || {}, rq = p.requests || {}, it = p.items || {};
    const cell = (v, name) => h('td', { class: 'num mono', title: fmtNum(v), 'data-testid': `protocol-${key}-${name}` }, exact(v));
    return h('tr', { 'data-testid': `protocol-${key}` }, h('td', {}, label),
      cell(rq.total, 'requests'), cell(rq.denied, 'requests-denied'), cell(it.total, 'items'), cell(it.denied, 'items-denied'));
  });
  return table({ 'data-testid': 'tenant-protocols' }, [{ label: 'Protocol' }, { label: 'Requests', num: true },
    { label: 'denied', num: true, title: 'requests denied (429)' }, { label: 'Items', num: true },
    { label: 'denied', num: true, title: 'items in denied requests' }], rows, '');
}

function fillMeter(tokens, capacity) {
  const f = isNum(tokens) && isNum(capacity) && Number(capacity) > 0 ? Math.max(0, Number(tokens) / Number(capacity)) : null;
  return meter(f, f == null ? '' : f < 0.1 ? 'bad' : f < 0.3 ? 'warn' : 'ok', `${fmtNum(tokens)} of ${fmtNum(capacity)}${f == null ? '' : ` · ${fmtPct(f)}`}`);
}

function bucketBlock(d) {
  const b = d.bucket, lim = d.limits || {};
  if (!b) return h('p', { class: 'calm' }, 'No bucket in Redis: the tenant is idle, its next request starts from a full bucket.');
  return [kv([
    ['Item tokens', fillMeter(b.item_tokens, lim.ingestion_burst)],
    isNum(b.request_tokens) && ['Request tokens', fillMeter(b.request_tokens, lim.request_burst)],
    ['Updated', timeAgo(b.item_updated_ms)],
  ]), h('p', { class: 'hint' }, `Refilled to now at ${fmtRate(lim.ingestion_rate)}, up to the burst; the last decision was at 'Updated'.`)];
}

function overrideInfo(o) {
  if (!o) return h('p', { class: 'calm' }, 'none — the tenant runs on its configured limits.');
  return h('div', { class: `override-active ${o.mode}` },
    h('p', {}, badge(o.mode, o.mode === 'shadow' ? 'warn' : 'bad'), ' ', h('span', { class: 'reason' }, o.reason)),
    kv([['Mode', o.mode], ['Reason', o.reason], ['Set by', o.by], ['Set', timeAgo(o.created_ms)],
      ['Expires', h('span', { title: fmtAbs(o.expires_ms) }, `in ${fmtDur(o.expires_in_s)}`)],
      ...Object.entries(o.limits || {}).map(([k, v]) => [h('span', { class: 'mono' }, k), exact(v)])]));
}

function tenantChart(d) {
  const series = d.series || [];
  const admitted = ['allowed', 'shadow_denied', 'failure_allowed'], denied = ['denied', 'failure_denied'];
  const lines = [
    { key: 'allowed', label: 'admitted', values: series.map((p) => perSecond(sumOf(p.items, admitted), p.step_s)) },
    { key: 'denied', label: 'denied', values: series.map((p) => perSecond(sumOf(p.items, denied), p.step_s)) },
    series.some((p) => Number(p.items?.shadow_denied) > 0)
      && { key: 'shadow_denied', label: 'shadow_denied (admitted)', values: series.map((p) => perSecond(p.items?.shadow_denied, p.step_s)) },
    series.some((p) => Number(p.items?.non_elected) > 0)
      && { key: 'non_elected', label: 'HA duplicates (forwarded, not charged)', values: series.map((p) => perSecond(p.items?.non_elected, p.step_s)) },
  ].filter(Boolean);
  return lineChart('chart-tenant-usage', series.map((p) => p.t), lines, { limit: d.limits?.ingestion_rate, ariaLabel: 'Items per second, admitted and denied, with the ingestion limit' });
}

const tenantPage = {
  enter(route, root) {
    if (D.id === route.id && root.contains(D.main)) return;
    D.id = route.id;
    D.badges = h('span', { class: 'head-badges' });
    D.main = h('div', { class: 'detail-main' }, loading());
    D.override = h('div', { 'data-testid': 'tenant-override' }, muted('loading…'));
    fill(root,
      h('a', { href: '#/tenants', class: 'back' }, '← All tenants'),
      h('div', { class: 'page-head' }, h('h1', {}, muted('Tenant '), h('span', { class: 'mono', 'data-testid': 'tenant-id' }, route.id)), D.badges),
      h('div', { class: 'detail-grid' }, D.main,
        h('aside', { class: 'detail-side' }, panel('Emergency override', D.override, h('h3', {}, 'Set or replace'), overrideForm(route.id)))));
  },
  leave(root) { root.replaceChildren(); D.id = null; },
  load(route, signal) {
    return api(`/api/tenants/${encodeURIComponent(route.id)}?${query({ window: state.window })}`, { signal });
  },
  render(d) {
    fill(D.badges, badge(d.configured ? 'in runtime overrides' : 'Mimir defaults', d.configured ? 'info' : 'muted'),
      d.override ? badge(`emergency override · ${d.override.mode}`, d.override.mode === 'shadow' ? 'warn' : 'bad') : null,
      Number(d.utilisation) > 1 ? badge('over its ingestion rate', 'bad') : null);
    fill(D.main,
      panel('Limits and usage', h('div', { class: 'split' }, limitsTable(d), usageBlock(d))),
      panel({ title: `Items/s · last ${fmtDur(d.window_s)}`, extra: muted('dashed: ingestion_rate') }, tenantChart(d)),
      h('div', { class: 'grid-2' }, panel('What a write is charged', chargingTable(d)), panel('HA clusters', haClustersBlock(d))),
      h('div', { class: 'grid-2' }, panel('Totals', totalsBlock(d.totals, d.window_s)), panel('Token bucket', bucketBlock(d))),
      panel({ title: 'Denials', extra: muted('latest per reason') }, denialsTable(d.denials || [], { withTenant: false })));
    fill(D.override, overrideInfo(d.override));
    const form = $('[data-testid="override-form"]', D.main.parentElement);
    for (const [key, name] of Object.entries(MIMIR_FIELD)) if (form?.elements[name]) form.elements[name].placeholder = `now ${exact(d.limits?.[key])}`;
  },
};

/* ---------------------------------------------------------------- page: denials */

const denialsPage = wholePage({
  load(route, signal) { return api(`/api/denials?${query({ limit: 200, window: state.window })}`, { signal }); },
  render(data, route, root) {
    const list = data.denials || [];
    const active = list.filter((d) => Date.now() - Number(d.last_ms) < ACTIVE_DENIAL_MS).length;
    fill(root,
      pageHead('Recent denials', `latest per tenant and reason, newest first · ${active} active in the last minute · request counts over the last ${fmtDur(data.window_s)}`),
      h('div', { class: 'panel' }, denialsTable(list, { testid: 'denials-table' })));
  },
});

/* ---------------------------------------------------------------- page: system */

function replicasTable(replicas, servedBy) {
  const columns = [{ label: 'Replica' }, { label: 'Version' }, { label: 'Failure mode' }, { label: 'Shadow' },
    { label: 'Redis breaker' }, { label: 'Heartbeat' }, { label: 'Started' }, { label: 'gRPC addr' }, { label: 'Admin addr' }];
  const rows = replicas.map((r) => h('tr', { 'data-replica': r.id },
    h('td', { class: 'mono' }, r.id, r.id === servedBy ? badge('answering', 'info', 'this replica answered the API') : null),
    h('td', { class: 'mono' }, r.version || '—'), h('td', {}, r.failure_mode || '—'),
    h('td', {}, r.shadow === 'true' ? badge('shadow', 'warn') : r.shadow || '—'),
    h('td', {}, r.breaker ? badge(r.breaker, r.breaker === 'open' ? 'bad' : 'ok') : '—'),
    h('td', { title: fmtAbs(Number(r.heartbeat_ms)), class: Number(r.age_s) > 5 ? 'warn-text' : null }, isNum(r.age_s) ? `${r.age_s} s ago` : '—'),
    h('td', {}, timeAgo(Number(r.started_ms))),
    h('td', { class: 'mono small' }, r.grpc_addr || '—'), h('td', { class: 'mono small' }, r.admin_addr || '—')));
  return table({ 'data-testid': 'replicas-table' }, columns, rows, 'No live replica registered in Redis.');
}

function redisPanel(redis) {
  return panel({ title: 'Redis', 'data-testid': 'redis-status' }, kv([
    ['Status', redis.ok ? badge('ok', 'ok') : badge('unreachable', 'bad')],
    ['Mode', redis.mode], ['Ping latency', fmtMs(redis.latency_ms)], ['Version', redis.version],
    ['Memory used', fmtBytes(redis.used_memory_bytes)],
    redis.error && ['Error', h('span', { class: 'bad-text' }, redis.error)],
  ]));
}

function syncPanel(sync) {
  return panel({ title: 'Overrides sync', 'data-testid': 'sync-status' }, sync.seen ? kv([
    ['Condition', badge(sync.condition || '—', sync.condition === 'ok' ? 'ok' : 'bad')],
    ['Generation', exact(sync.generation)], ['Source', h('span', { class: 'mono' }, sync.source || '—')],
    ['Tenants', exact(sync.tenants)],
    ['Last success', timeAgo(sync.last_success_ms)], ['Age', isNum(sync.age_s) ? fmtDur(sync.age_s) : '—'],
    ['Last error', sync.last_error ? h('span', { class: 'bad-text' }, sync.last_error) : muted('none')],
  ]) : h('p', { class: 'warn-text' }, 'overrides-sync has never written to Redis: every tenant runs on the defaults.'));
}

function breakersPanel(replicas, ready) {
  const open = replicas.filter((r) => r.breaker === 'open');
  return panel('Redis breakers and readiness',
    h('p', {}, open.length ? h('span', { class: 'bad-text' }, `${open.length} of ${replicas.length} replicas have their Redis breaker open: they decide by their failure mode.`)
      : h('span', { class: 'calm' }, `All ${replicas.length} breakers closed.`)),
    ready ? kv([['Answering replica', h('span', { class: 'mono' }, ready.replica_id)],
      ['Ready', badge(String(ready.ready), ready.ready ? 'ok' : 'bad')], ['Serving', String(ready.serving)],
      ['Redis breaker', badge(ready.redis_breaker || '—', ready.redis_breaker === 'open' ? 'bad' : 'ok')],
      ['Defaults loaded', String(ready.defaults_loaded)], ['Failure mode', ready.failure_mode],
      ['Shadow', String(ready.shadow)], ['Live replicas (its view)', exact(ready.live_replicas)]]) : null);
}

function overridesTable(list) {
  const rows = list.map((o) => h('tr', {},
    h('td', {}, tenantLink(o.tenant)), h('td', {}, badge(o.mode, o.mode === 'shadow' ? 'warn' : 'bad')),
    h('td', { class: 'reason' }, o.reason), h('td', {}, o.by || '—'), h('td', {}, timeAgo(o.created_ms)),
    h('td', { title: fmtAbs(o.expires_ms) }, `in ${fmtDur(o.expires_in_s)}`),
    h('td', { class: 'mono small' }, Object.entries(o.limits || {}).map(([k, v]) => `${k}=${exact(v)}`).join('  ') || '—')));
  return table({ 'data-testid': 'overrides-table' }, [{ label: 'Tenant' }, { label: 'Mode' }, { label: 'Reason' }, { label: 'By' },
    { label: 'Set' }, { label: 'Expires' }, { label: 'Limits' }], rows, 'No emergency override in force.');
}

const auditValue = (v) => (v && typeof v === 'object' ? Object.entries(v).map(([k, x]) => `${k}=${JSON.stringify(x)}`).join(' ') : String(v));

function auditTable(entries) {
  const rows = entries.map((e) => {
    const { event, by, client, tenant, at_ms: at, ...details } = e || {};
    return h('tr', {}, h('td', {}, timeAgo(at)), h('td', {}, event || '—'), h('td', {}, tenant ? tenantLink(tenant) : '—'),
      h('td', {}, by || '—'), h('td', { class: 'mono small' }, client || '—'),
      h('td', { class: 'small' }, Object.entries(details).map(([k, v]) => `${k}: ${auditValue(v)}`).join(' · ') || '—'));
  });
  return table({ 'data-testid': 'audit-table' }, [{ label: 'When' }, { label: 'Event' }, { label: 'Tenant' }, { label: 'By' },
    { label: 'Client' }, { label: 'Details' }], rows, 'No changes recorded.');
}

function configValue(v) {
  if (v == null || v === '' || (Array.isArray(v) && !v.length)) return muted('—');
  return Array.isArray(v) ? v.map(String).join(', ') : typeof v === 'object' ? JSON.stringify(v) : String(v);
}

const systemPage = wholePage({
  async load(route, signal) {
    const ov = await api('/api/overview?window=60', { signal });
    const overrides = await api('/api/overrides', { signal });
    const config = await api('/api/config', { signal });
    return { ov, overrides, config, ready: await api('/api/ready', { signal, accept: [503] }) };
  },
  render({ ov, overrides, config, ready }, route, root) {
    const replicas = ov.replicas || [];
    fill(root,
      pageHead('System', 'fleet health, read from Redis · answered by replica ', h('span', { class: 'mono' }, ov.served_by || '—')),
      healthStrip(ov),
      panel({ title: `Replicas (${replicas.length} live)`, extra: muted('registered by heartbeat') }, replicasTable(replicas, ov.served_by)),
      h('div', { class: 'grid-3' }, redisPanel(ov.redis || {}), syncPanel(ov.sync || {}), breakersPanel(replicas, ready)),
      panel({ title: 'Emergency overrides in force', extra: muted(overrides?.writable ? 'writable (an admin token is configured)' : 'read-only: no admin token configured') },
        overridesTable(overrides?.overrides || [])),
      panel({ title: 'Audit trail', extra: muted('latest changes first') }, auditTable(overrides?.audit || [])),
      panel({ title: 'Effective config', extra: h('span', { class: 'muted' }, 'of replica ', h('span', { class: 'mono' }, config?.replica_id || '—'), ' (secrets redacted)'), 'data-testid': 'config' },
        kv(Object.entries(config || {}).map(([k, v]) => [h('span', { class: 'mono' }, k), h('span', { class: 'mono' }, configValue(v))]), { class: 'kv config' })));
  },
});

const PAGES = { overview: overviewPage, tenants: tenantsPage, tenant: tenantPage, denials: denialsPage, system: systemPage };

/* ---------------------------------------------------------------- start */

function start() {
  const select = $('#window-select');
  select.value = String(state.window);
  select.addEventListener('change', () => { state.window = Number(select.value); store('localStorage', WINDOW_KEY, select.value); reload(); });
  window.addEventListener('hashchange', onRoute);
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) { clearTimeout(timer); setLive(); } else refresh();
  });
  // Relative times ("12 s ago") stay current between refreshes.
  setInterval(() => document.querySelectorAll('time[data-ms]').forEach((el) => {
    const text = relText(Number(el.dataset.ms));
    if (el.textContent !== text) el.textContent = text;
  }), 1000);
  onRoute();
}

start();
