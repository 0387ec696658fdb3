// The rate limits & cache page: throttling per provider, model and key, providers' headroom and the 429s over
// time, and what the cache answered and saved, all from /api/limits (analytics/limits.py, overview.py).
import {
  api, cards, chart, coloured, el, empty, href, int, link, params, pct, periodLabel, rowsOf, section, table, time, usd,
} from '../ui.js';

const seconds = (value) => (value === null || value === undefined ? '–' :
  `${Number(value).toLocaleString('en-US', {maximumFractionDigits: 2})} s`);

const THROTTLING_COLUMNS = [
  {key: 'provider', label: 'Provider'},
  {key: 'model', label: 'Model', href: (row) => (row.model ? href('requests', {model: row.model}) : null)},
  {key: 'key', label: 'Key'},
  {key: 'rate_limited', label: '429s', num: true, format: int,
    href: (row) => (row.rate_limited ? href('requests', {status: '429', model: row.model}) : null)},
  {key: 'last_rate_limited', label: 'Last 429', format: time},
  {key: 'retry_after_s', label: 'Retry-after', num: true, format: seconds},
  {key: 'requests_left_min_pct', label: 'Requests left, lowest', num: true, format: (v) => pct(v, 2)},
  {key: 'requests_left_now_pct', label: 'Requests left, now', num: true, format: (v) => pct(v, 2)},
  {key: 'tokens_left_min_pct', label: 'Tokens left, lowest', num: true, format: (v) => pct(v, 2)},
  {key: 'tokens_left_now_pct', label: 'Tokens left, now', num: true, format: (v) => pct(v, 2)},
];

const FIRST_ROWS = 15;  // the most throttled first; the rest behind a button, so the charts stay in reach

/** The throttling table, its first rows shown (the most throttled, as the query orders them), all with `all=1` in
 * the URL (as the Users page does: a live refresh keeps it, where a button's expansion was undone by the next call). */
function throttlingTable(rows) {
  if (!rows.length) return empty('No 429s and no rate-limit headers in this range.');
  if (rows.length <= FIRST_ROWS || params().get('all') === '1') return table(THROTTLING_COLUMNS, rows);
  return el('div', {}, table(THROTTLING_COLUMNS, rows.slice(0, FIRST_ROWS)),
    el('p', {class: 'muted'}, link(href('limits', {all: '1'}), `Show all ${int(rows.length)} rows`)));
}

export async function render() {
  const answer = await api('limits');
  const summary = rowsOf(answer.summary)[0];
  const throttling = rowsOf(answer.limits);
  const headroom = rowsOf(answer.headroom);
  const cache = rowsOf(answer.cache);
  const content = [cards([
    {id: 'cache-hits', label: 'Cache hits', value: int(summary.cache_hits),
      note: `of ${int(summary.cache_hits + summary.cache_misses)} cached calls`, href: href('requests', {cache: 'hit'})},
    {id: 'cache-hit-rate', label: 'Cache hit rate', value: pct(summary.cache_hit_pct)},
    {id: 'saved', label: 'Saved by the cache', value: usd(summary.saved_usd)},
  ]),
  section('Throttling by provider, model and key', throttlingTable(throttling))];
  if (!headroom.length) return content;
  const step = answer.step_s;
  const labels = headroom.map((row) => periodLabel(row.bucket, step));
  content.push(
    el('div', {class: 'grid2'},
      chart('429s from providers', {type: 'bar', data: {labels, datasets: coloured([
        {label: '429s', data: headroom.map((row) => row.rate_limited)},
      ])}}, {yFormat: int}),
      chart('Headroom: lowest budget left', {type: 'line', data: {labels, datasets: coloured([
        {label: 'requests left', data: headroom.map((row) => row.requests_left_min_pct)},
        {label: 'tokens left', data: headroom.map((row) => row.tokens_left_min_pct)},
      ], 'line')}, options: {spanGaps: true}}, {yFormat: pct})),
    el('div', {class: 'grid2'},
      chart('Cache hit rate', {type: 'line', data: {labels, datasets: coloured([
        {label: 'hit rate', data: cache.map((row) => row.cache_hit_pct)},
      ], 'line')}, options: {spanGaps: true}}, {yFormat: pct}),
      chart('Saved by the cache', {type: 'bar', data: {labels, datasets: coloured([
        {label: 'saved', data: cache.map((row) => Number(row.saved_usd))},
      ])}}, {yFormat: usd})));
  return content;
}
