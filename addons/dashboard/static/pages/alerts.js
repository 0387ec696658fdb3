// The Alerts page: the config's alert and budget rules against their thresholds now, every budget per scope value
// with what it used and has left, and the alerts sent; all from /api/alerts (analytics/alerting.py), the figures
// `llmtap alerts list` and `llmtap budgets` print.
import {api, el, empty, href, int, link, ms, rowsOf, section, table, time, usd} from '../ui.js';

const METRIC_WORDS = {spend_usd: 'spend', requests: 'requests', error_rate: 'error rate', rate_limited: '429s',
  p95_latency_ms: 'p95 latency'};
const BUDGET_METRICS = ['spend_usd', 'requests'];
const NO_VALUE = '(none)';

/** A rule's metric value as the terminal writes it: $1.23, 1,234 requests, 5.2%, 840 ms, 3 429s; n/a unknown. */
export function metricText(metric, value) {
  if (value === null || value === undefined) return 'n/a';
  if (metric === 'spend_usd') return usd(value);
  if (metric === 'error_rate') return `${Number(value).toLocaleString('en-US', {maximumFractionDigits: 2})}%`;
  if (metric === 'p95_latency_ms') return ms(value);
  return `${int(value)} ${metric === 'requests' ? 'requests' : '429s'}`;
}

/** Used against a threshold as a bar (full and red once spent), the figures beside it. */
function usageBar(used, threshold, text) {
  const share = Number(threshold) > 0 ? Number(used) / Number(threshold) : (Number(used) > 0 ? 1 : 0);
  const fill = el('div', {class: 'bar-fill'});
  fill.style.width = `${Math.min(100, Math.max(0, share * 100))}%`;  // CSSOM: the CSP allows no style attribute
  return el('div', {class: 'usage'},
    el('div', {class: share >= 1 ? 'bar spent' : 'bar', role: 'meter', 'aria-valuemin': 0,
      'aria-valuemax': Number(threshold), 'aria-valuenow': Number(used), 'aria-label': text}, fill),
    el('span', {class: 'usage-text'}, text));
}

const stateBadge = (state) => el('span', {class: `badge state-${state === 'n/a' ? 'na' : state}`}, state);

function watches(rule) {
  let text = `${METRIC_WORDS[rule.metric] || rule.metric} over ${rule.period}`;
  if (rule.scope !== 'all') text += ` per ${rule.scope.replace('property:', 'property ')}`;
  const where = Object.entries(rule.where || {}).map(([field, values]) => `${field}=${values.join(',')}`);
  if (where.length) text += ` where ${where.join(' ')}`;
  return text;
}

function nowCell(rule) {
  const text = metricText(rule.metric, rule.value);
  const scoped = rule.scope !== 'all' && (rule.value_scope !== null || rule.over > 0) ?
    el('span', {class: 'sub'}, `${rule.value_scope ?? NO_VALUE}; ${int(rule.over)} of ${int(rule.scope_values)} over`) :
    null;
  const shown = rule.scope === 'all' && BUDGET_METRICS.includes(rule.metric) ?
    usageBar(rule.value, rule.threshold, `${text} of ${metricText(rule.metric, rule.threshold)}`) : text;
  return el('span', {}, shown, scoped);
}

function firedCell(rule) {
  if (!rule.last_fired_at) return 'never';
  const parts = [time(rule.last_fired_at)];
  if (rule.scope !== 'all') parts.push(`for ${rule.last_fired_scope ?? NO_VALUE}`);
  if (rule.last_fired_delivered === false) parts.push('(not delivered)');
  return el('span', {}, parts.join(' '),
    rule.resolved_at ? el('span', {class: 'sub'}, `resolved ${time(rule.resolved_at)}`) : null);
}

// What a phone shows first without scrolling sideways: the rule, its state and its value; what it watches after.
const RULE_COLUMNS = [
  {key: 'rule', label: 'Rule', format: (v, r) => el('span', {}, v, el('span', {class: 'sub'},
    r.action === 'block' ? 'block' : 'notify'))},
  {key: 'state', label: 'State', format: stateBadge},
  {key: 'value', label: 'Now', format: (v, r) => nowCell(r)},
  {key: 'threshold', label: 'Threshold', num: true, format: (v, r) => metricText(r.metric, v)},
  {key: 'metric', label: 'Watches', format: (v, r) => el('span', {class: 'wrap'}, watches(r))},
  {key: 'channels', label: 'Channels', format: (v) => (v && v.length ? v.join(', ') : '–')},
  {key: 'last_fired_at', label: 'Last fired (UTC)', format: (v, r) => firedCell(r)},
];

function budgetState(row) {
  return stateBadge(row.blocking ? 'blocking' : row.over ? 'over' : 'ok');
}

const BUDGET_COLUMNS = [
  {key: 'rule', label: 'Budget', format: (v, r) => el('span', {}, v, el('span', {class: 'sub'}, r.action))},
  {key: 'scope_value', label: 'For', format: (v, r) => (r.scope === 'all' ? 'all' : v ?? NO_VALUE),
    href: (r) => (r.scope === 'user' && r.scope_value !== null ? href('requests', {user: r.scope_value}) : null)},
  {key: 'blocking', label: 'State', format: (v, r) => budgetState(r)},
  {key: 'used', label: 'Used', format: (v, r) => usageBar(v, r.threshold,
    `${metricText(r.metric, v)}${Number(r.unpriced) > 0 ? '+?' : ''} of ${metricText(r.metric, r.threshold)}`)},
  {key: 'left', label: 'Left', num: true, format: (v, r) => metricText(r.metric, v)},
  {key: 'used_pct', label: 'Used %', num: true,
    format: (v) => (v === null || v === undefined ? '–' : `${Number(v).toLocaleString('en-US')}%`)},
  {key: 'window', label: 'Window', format: (v, r) => el('span', {}, v,
    r.resets_at ? el('span', {class: 'sub'}, `resets ${time(r.resets_at).slice(0, 16)}`) : null)},
];

const HISTORY_COLUMNS = [
  {key: 'created_at', label: 'Time (UTC)', format: time},
  {key: 'rule', label: 'Rule'},
  {key: 'kind', label: 'Kind'},
  {key: 'scope_value', label: 'For', format: (v) => v ?? '–'},
  {key: 'metric_value', label: 'Value', num: true, format: (v, r) => metricText(r.metric, v)},
  {key: 'channel', label: 'Channel'},
  {key: 'target', label: 'Target', format: (v) => el('span', {class: 'wrap'}, v ?? '–')},
  {key: 'outcome', label: 'Outcome', format: (v) => el('span', {class: `badge outcome-${v}`}, v)},
  {key: 'detail', label: 'Detail', format: (v) => el('span', {class: 'wrap'}, v ?? '')},
];

const BUDGETS_SHOWN = 100;  // the most used first; a thousand users' rows take a browser seconds to lay out

export async function render({params}) {
  const answer = await api('alerts');
  const rules = rowsOf(answer.rules);
  const budgets = rowsOf(answer.budgets);
  const history = rowsOf(answer.history);
  const note = el('p', {class: 'note muted'}, 'Each rule is measured over its own window, whatever the time range ' +
    'and filters above; the time range picks the alerts shown under Recent alerts.');
  if (!rules.length) {
    return [note, section('Rules', empty('No alert or budget rules: add an `alerts` list to the config.'))];
  }
  const shownBudgets = params.get('all') === '1' ? budgets : budgets.slice(0, BUDGETS_SHOWN);
  const budgetRules = rules.filter((r) => BUDGET_METRICS.includes(r.metric));
  const quiet = budgetRules.filter((r) => !budgets.some((b) => b.rule === r.rule)).map((r) => r.rule);
  return [
    note,
    section(`Rules (${int(rules.length)})`, table(RULE_COLUMNS, rules,
      {rowClass: (r) => (r.state === 'over' ? 'over' : null)})),
    section('Budgets', budgetRules.length ? [
      budgets.length ? table(BUDGET_COLUMNS, shownBudgets, {rowClass: (r) => (r.blocking ? 'over' : null)}) : null,
      shownBudgets.length < budgets.length ? el('p', {class: 'note muted'},
        `The ${int(shownBudgets.length)} most used of ${int(budgets.length)}. `,
        link(href('alerts', {all: '1'}), 'Show all')) : null,
      quiet.length ? el('p', {class: 'note muted'}, `No calls in the window yet: ${quiet.join(', ')}.`) : null,
    ] : empty('No spend_usd or requests rules.')),
    section('Recent alerts', history.length ? table(HISTORY_COLUMNS, history,
      {rowClass: (r) => (r.outcome === 'failed' ? 'error' : null)}) : empty('No alert sent in this time range.')),
  ];
}
