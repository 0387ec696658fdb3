// The requests page: the calls of the scope, newest first, paged by a cursor kept in the URL (`before`, `after`);
// `/requests/<id>` opens one call: its conversation by role, the answer, metadata, attempts, cost and raw JSON.
// Everything from the log is set as text (ui.el), so a prompt holding markup is shown, never run.
import {api, el, empty, href, int, link, ms, params, rowsOf, scopeParams, section, table, time, usd} from '../ui.js';

// The list follows new calls as they land; one call's view does not change, so it is not re-rendered.
export let live = true;

export async function render({item}) {
  live = !item;
  return item ? callView(item) : listView();
}

// ---------------------------------------------------------------------------------------------- the list

function isError(row) {
  return row.status === null || row.status === undefined || row.status >= 400;
}

function callUrl(id) {
  return href(`requests/${encodeURIComponent(id)}`);
}

async function listView() {
  const p = params();
  const query = scopeParams(p);
  for (const name of ['before', 'after', 'limit']) if (p.get(name)) query.set(name, p.get(name));
  const answer = await api('requests', query);
  const rows = rowsOf(answer.calls);
  const paged = p.has('before') || p.has('after');
  const keep = p.get('limit') ? {limit: p.get('limit')} : {};
  const columns = [
    {key: 'time', label: 'time (UTC)', format: (v, r) => link(callUrl(r.id), time(v))},
    {key: 'model', label: 'model'},
    {key: 'provider', label: 'provider'},
    {key: 'user', label: 'user'},
    {key: 'status', label: 'status', num: true, format: (v) => (v === null ? 'no answer' : String(v))},
    {key: 'latency_ms', label: 'latency', num: true, format: ms},
    {key: 'tokens_in', label: 'tokens in → out', num: true,
      format: (v, r) => `${int(v)} → ${int(r.tokens_out)}`},
    {key: 'cost_usd', label: 'cost', num: true, format: usd},
    {key: 'cache', label: 'cache'},
  ];
  const shown = rows.length;
  let summary;
  if (!shown && answer.searched_since) {
    summary = `No call found back to ${time(answer.searched_since)} UTC; “Older” searches further back.`;
  } else if (!shown) summary = 'No calls in this scope.';
  else if (answer.total === null && answer.searched_since) {
    summary = `${int(shown)} calls found, newest first, searching back to ${time(answer.searched_since)} UTC; ` +
      'older calls are searched on “Older”';
  } else if (answer.total === null) summary = `${int(shown)} calls shown, newest first; more may match (a text search is not counted)`;
  else if (!paged) summary = `1–${int(shown)} of ${int(answer.total)} calls, newest first`;
  else summary = `${int(shown)} calls from ${time(rows[0].time)} back to ${time(rows[shown - 1].time)}, of ${int(answer.total)} in the scope`;
  const pager = el('nav', {class: 'pager', 'aria-label': 'pages of calls'},
    paged ? link(href('requests', keep), '« Newest') : null,
    answer.newer ? link(href('requests', {...keep, after: answer.newer}), '‹ Newer') : null,
    answer.next ? link(href('requests', {...keep, before: answer.next}), 'Older ›') : null);
  return [
    el('p', {class: 'muted', id: 'requests-count'}, summary),
    shown ? table(columns, rows, {rowClass: (r) => (isError(r) ? 'error' : null)}) : empty('Nothing to show.'),
    pager,
  ];
}

// ---------------------------------------------------------------------------------------------- one call

function turns(list) {
  return el('div', {class: 'turns'}, list.map((t) => el('div', {class: 'turn', dataset: {role: t.role || 'text'}},
    t.role ? el('div', {class: 'turn-role'}, t.role) : null,
    el('div', {class: 'text'}, t.text))));
}

/** Label/value lines; values that are empty are left out. */
function facts(lines) {
  const kept = lines.filter(([, v]) => v !== null && v !== undefined && v !== '' && !(Array.isArray(v) && !v.length));
  return el('dl', {class: 'facts'}, kept.flatMap(([label, value]) => [el('dt', {}, label),
    el('dd', {}, value instanceof Node ? value : (Array.isArray(value) ? value.join('\n') : String(value)))]));
}

function entries(map) {
  return map ? Object.entries(map).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}: ${v}`) : [];
}

function plural(n, one, many) {
  return `${int(n)} ${Number(n) === 1 ? one : many}`;
}

function raw(body) {
  if (body === null || body === undefined) return '(not logged)';
  return typeof body === 'string' ? body : JSON.stringify(body, null, 2);
}

async function callView(id) {
  const answer = await api(`requests/${encodeURIComponent(id)}`, new URLSearchParams());
  const call = rowsOf(answer.call)[0];
  const asked = call.model_requested;
  const model = call.model && asked && call.model !== asked ? `${call.model} (asked for ${asked})` : (call.model || asked);
  const session = call.session_id ? el('span', {}, link(href(`sessions/${encodeURIComponent(call.session_id)}`),
    call.session_id), [call.session_path, call.session_name].filter(Boolean).map((s) => `  ${s}`).join('')) : null;
  const status = call.status === null ? 'no answer' : String(call.status);
  const meta = facts([
    ['id', call.request_id],
    ['time', `${time(call.created_at)} UTC`],
    ['status', call.error ? `${status} — ${call.error}` : status],
    ['model', model],
    ['provider', call.provider],
    ['way in', `${call.way}  ${call.method} ${call.path}`],
    ['user', call.user_id],
    ['session', session],
    ['prompt', call.prompt_id],
    ['key owner', call.key_owner],
    ['timings', [['latency', call.latency_ms], ['ttfb', call.ttfb_ms], ['ttft', call.ttft_ms]]
      .filter(([, v]) => v !== null).map(([n, v]) => `${n} ${ms(v)}`).join('  ')],
    ['cache', call.cache_status],
    ['properties', entries(call.properties).map((line) => line.replace(': ', '='))],
    ['rate limits', entries(call.ratelimit)],
    ['notes', call.notes || []],
    ['upstream', call.upstream],
  ]);

  const attemptRows = (answer.attempts || []).map((a, i) => ({...a, n: i + 1}));
  const attempts = section('Attempts',
    facts([['tries', `${plural(call.attempts, 'try', 'tries')}, ${plural(call.retries || 0, 'retry', 'retries')}`],
      ['fallback from', call.fallback_from]]),
    attemptRows.length ? table([
      {key: 'n', label: 'try', num: true},
      {key: 'provider', label: 'provider'},
      {key: 'model', label: 'model'},
      {key: 'status', label: 'status', num: true, format: (v) => (v === null ? 'no answer' : String(v))},
      {key: 'latency_ms', label: 'latency', num: true, format: ms},
      {key: 'wait_ms', label: 'wait', num: true, format: ms},
      {key: 'retry_after_s', label: 'retry-after', num: true, format: (v) => (v === null ? '–' : `${v} s`)},
      {key: 'error', label: 'error'},
    ], attemptRows, {rowClass: isError}) : empty('One try, no attempt log.'));

  const c = answer.cost;
  const tokenRows = [['input (all)', c.tokens.input], ['cached input', c.tokens.cached_input],
    ['written to cache', c.tokens.cache_write], ['output (all)', c.tokens.output], ['reasoning', c.tokens.reasoning]]
    .map(([kind, n]) => ({kind, tokens: n}));
  const split = c.genai_prices_split;
  const cost = section('Cost',
    el('div', {class: 'narrow'},
      table([{key: 'kind', label: 'tokens'}, {key: 'tokens', label: 'count', num: true, format: int}], tokenRows)),
    facts([
      ['cost', c.cost_usd === null ? `$? — ${c.price_error || 'no reason recorded'}` : usd(c.cost_usd)],
      ['price source', c.price_source],
      ['saved by the cache', c.cost_saved_usd === null ? null : usd(c.cost_saved_usd)],
      ['genai-prices split', split ? `input ${usd(split.input_usd)} + output ${usd(split.output_usd)}` +
        (split.matches_logged ? '' : ' (at today’s genai-prices; differs from the logged total)') : null],
    ]));

  return [
    el('p', {}, link(href('requests'), '‹ all requests')),
    section(answer.known_format ? 'Conversation' : 'Request', turns(answer.conversation)),
    section(call.stream ? 'Answer (streamed)' : 'Answer', turns(answer.answer)),
    section('Details', meta),
    attempts,
    cost,
    section('Request JSON', el('pre', {class: 'raw-request'}, raw(answer.request_body))),
    section('Response JSON', el('pre', {class: 'raw-response'}, raw(answer.response_body))),
  ];
}
