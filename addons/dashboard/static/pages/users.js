// The users page: who spent what (queries.users via /api/users), each user linking to their requests.
import {api, el, empty, href, int, link, ms, pct, rowsOf, section, table, time, usdPartial} from '../ui.js';

const NO_USER = '(no user)';
const USERS_SHOWN = 100;
const MIX_SHOWN = 3;  // a user of 30 models would make a row 20 lines high: the most used here, all on hover

export async function render({params}) {
  const all = rowsOf((await api('users')).users);
  if (!all.length) return section('Users', empty('No calls in this time range and filters.'));
  // The most spending users first; laying out a thousand rows takes a browser seconds, so the rest on request.
  const rows = params.get('all') === '1' ? all : all.slice(0, USERS_SHOWN);
  const anonymous = all.some((r) => r.user === null);
  const columns = [
    // Calls without a user get no link: no filter selects "no user" (user= matches a name).
    {key: 'user', label: 'User', format: (v) => v ?? NO_USER, href: (r) => r.user === null ? null :
      href('requests', {user: r.user})},
    {key: 'requests', label: 'Requests', format: int, num: true},
    {key: 'cost_usd', label: 'Cost', format: (v, r) => usdPartial(v, r.unpriced), num: true},
    {key: 'avg_latency_ms', label: 'Avg latency', format: ms, num: true},
    {key: 'p95_latency_ms', label: 'p95 latency', format: ms, num: true},
    {key: 'error_pct', label: 'Errors', format: (v) => pct(v), num: true},
    {key: 'models', label: 'Model mix', format: modelMix},
    {key: 'last_seen', label: 'Last seen (UTC)', format: time},
  ];
  const notes = [];
  if (rows.length < all.length) {
    notes.push(el('span', {}, `The ${int(rows.length)} users who spent most of ${int(all.length)}. `,
      link(href('users', {all: '1'}), 'Show all')));
  }
  if (anonymous) notes.push(`${NO_USER}: calls sent without Helicone-User-Id; no filter selects them, so no link.`);
  if (rows.some((r) => Number(r.unpriced) > 0)) notes.push('+? : some of the user\'s calls have no known price.');
  return section(`Users (${int(all.length)})`, table(columns, rows, {rowClass: (r) => r.user === null ? 'muted' : null}),
    notes.map((n) => el('p', {class: 'note muted'}, n)));
}

/** The user's most used models (the query's text, most used first), the rest counted; the whole mix on hover. */
function modelMix(text) {
  if (!text) return '–';
  const models = text.split(', ');
  const shown = models.slice(0, MIX_SHOWN).join(', ');
  return el('span', {class: 'model-mix', title: text},
    models.length > MIX_SHOWN ? `${shown} … +${models.length - MIX_SHOWN} more` : shown);
}
