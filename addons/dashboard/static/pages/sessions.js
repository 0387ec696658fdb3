// The sessions page: the newest sessions in the scope (/api/sessions: queries.sessions), and one session
// (/sessions/<id>: queries.session_totals and queries.trace) as cards and a waterfall of its calls.
import {
  api, cards, el, empty, href, int, link, ms, rowsOf, section, table, time, usd,
} from '../ui.js';

const LIMITS = [100, 1000, 5000];  // how many of the newest sessions the list shows (the URL's `limit`)

export async function render({item, params}) {
  return item === null ? list(params) : one(item);
}

async function list(url) {
  const limit = Number(url.get('limit')) || LIMITS[0];
  const query = new URLSearchParams(href('sessions', {limit}).split('?')[1]);
  const rows = rowsOf((await api('sessions', query)).sessions);
  if (!rows.length) {
    return section('Sessions', empty('No session in this time range and filters (calls join one with a ' +
      'Helicone-Session-Id header).'));
  }
  const columns = [
    // The name under the id (as `llmtap sessions` shows it), and cost next: what a phone shows without scrolling.
    {key: 'session', label: 'Session', format: (v, r) => el('span', {},
      link(href(`sessions/${encodeURIComponent(v)}`), v), r.name ? el('span', {class: 'sub'}, r.name) : null)},
    {key: 'calls', label: 'Calls', format: int, num: true},
    {key: 'cost_usd', label: 'Cost', format: usd, num: true},
    {key: 'duration_ms', label: 'Duration', format: duration, num: true},
    {key: 'tokens', label: 'Tokens', format: int, num: true},
    {key: 'errors', label: 'Errors', format: int, num: true},
    {key: 'users', label: 'Users', format: int, num: true},
    {key: 'models', label: 'Models', format: int, num: true},
    {key: 'started', label: 'Started (UTC)', format: time},
  ];
  const more = LIMITS.find((n) => n > limit);
  const footer = rows.length < limit ? null : el('p', {class: 'note muted'}, `The newest ${int(limit)} sessions. `,
    more ? link(href('sessions', {limit: more}), `Show the newest ${int(more)}`) : 'Narrow the time range for older ones.');
  const unknown = rows.some((r) => Number(r.unpriced) > 0) ?
    el('p', {class: 'note muted'}, '$? : a session with a call of unknown price has no total.') : null;
  return section(`Sessions (${int(rows.length)})`, table(columns, rows, {
    rowClass: (r) => Number(r.errors) > 0 ? 'has-errors' : null}), footer, unknown);
}

async function one(id) {
  const answer = await api(`sessions/${encodeURIComponent(id)}`, new URLSearchParams());
  const session = rowsOf(answer.session)[0];
  const calls = rowsOf(answer.trace);
  const back = el('p', {}, link(href('sessions'), '← all sessions'));
  const head = el('h2', {class: 'session-id'}, session.name ? `${session.name} · ${session.session}` : session.session);
  const totals = cards([
    {label: 'Calls', value: int(session.calls), id: 'calls'},
    {label: 'Cost', value: usd(session.cost_usd), id: 'cost',
      note: Number(session.unpriced) > 0 ? `${int(session.unpriced)} call(s) with unknown price` : null},
    {label: 'Tokens', value: int(session.tokens), id: 'tokens'},
    {label: 'Errors', value: int(session.errors), id: 'errors'},
    {label: 'Users', value: int(session.users), id: 'users'},
    {label: 'Models', value: int(session.models), id: 'models'},
    {label: 'Started (UTC)', value: time(session.started), id: 'started'},
    {label: 'Duration', value: duration(session.duration_ms), id: 'duration'},
  ]);
  return [back, head, totals, section('Calls by session path', waterfall(calls, Number(session.duration_ms)))];
}

/** One row per call in arrival order: its path indented by depth, model, status, tokens, cost, and a bar placed at
 * its offset from the session's start, as wide as its latency (CSSOM percentages: the page's CSP allows those). */
function waterfall(calls, totalMs) {
  if (!calls.length) return empty('This session has no calls.');
  const span = totalMs > 0 ? totalMs : 1;
  const header = el('div', {class: 'wf-row wf-head'}, el('span', {}, 'Path'), el('span', {}, 'Model'),
    el('span', {class: 'num'}, 'Status'), el('span', {class: 'num'}, 'Tokens'), el('span', {class: 'num'}, 'Cost'),
    el('span', {class: 'wf-scale'}, el('span', {}, '0'), el('span', {}, duration(totalMs))));
  const rows = calls.map((c) => {
    const bar = el('span', {class: 'wf-bar'});
    const left = Math.min(100, (100 * Number(c.offset_ms)) / span);
    bar.style.left = `${left}%`;
    bar.style.width = `${Math.max(0.5, Math.min(100 - left, (100 * Number(c.latency_ms || 0)) / span))}%`;
    const path = el('span', {class: 'wf-path', title: c.path ?? ''}, link(href(`requests/${encodeURIComponent(c.request_id)}`),
      c.path ?? '(no path)'));
    path.style.paddingLeft = `${Math.max(0, Number(c.depth) - 1) * 1.1}em`;
    const failed = c.status === null || Number(c.status) >= 400;
    const tokens = Number(c.input_tokens || 0) + Number(c.output_tokens || 0);
    return el('div', {class: `wf-row${failed ? ' failed' : ''}`, dataset: {depth: c.depth, request: c.request_id}},
      path, el('span', {class: 'wf-model'}, c.model ?? '–'),
      el('span', {class: 'num wf-status'}, c.status ?? 'no answer'),
      el('span', {class: 'num'}, int(tokens)), el('span', {class: 'num'}, usd(c.cost_usd)),
      el('span', {class: 'wf-track', title: `+${ms(c.offset_ms)}, ${ms(c.latency_ms)}`}, bar,
        // The figures sit on the side the bar leaves free, so they never hide it.
        el('span', {class: `wf-latency ${left > 50 ? 'at-left' : ''}`},
          `+${duration(c.offset_ms)} · ${ms(c.latency_ms)}`)));
  });
  return el('div', {class: 'waterfall', role: 'table'}, header, ...rows);
}

/** A duration: '840 ms', '12.3 s', '4 min 05 s', '2 h 03 min'. */
function duration(value) {
  if (value === null || value === undefined) return '–';
  const n = Number(value);
  if (n < 1000) return `${Math.round(n)} ms`;
  if (n < 60000) return `${(n / 1000).toFixed(1)} s`;
  const s = Math.round(n / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}
