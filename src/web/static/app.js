// The dashboard's shell: login, the live stream from the leader, and the view chosen in the URL's
// hash (#overview, #charts, #journal, #files, #events). Plain ES modules, no build step.

import { h, render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import htm from 'htm';
import { api } from './api.js';
import { ChartsView } from './charts.js';
import { EventsView, FilesView, JournalView, OverviewView } from './views.js';

const html = htm.bind(h);
const samplesKept = 300;
const eventsKept = 500;

const views = [
  ['overview', 'Overview'],
  ['charts', 'Throughput and latency'],
  ['journal', 'Journal'],
  ['files', 'Files'],
  ['events', 'Events'],
];

function Login({ onLogin }) {
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    setBusy(true);
    setError('');
    try {
      await api('/api/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: form.get('user'), password: form.get('password') }) });
      onLogin();
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="login">
    <h1>cairn</h1>
    <form onSubmit=${submit} aria-describedby="login-help">
      <p id="login-help">Log in with a dashboard user (<code>cairn admin dashboard user add NAME</code>).</p>
      <label for="user">User</label>
      <input id="user" name="user" autocomplete="username" required autofocus />
      <label for="password">Password</label>
      <input id="password" name="password" type="password" autocomplete="current-password" required />
      <button type="submit" disabled=${busy}>${busy ? 'Logging in…' : 'Log in'}</button>
      ${error && html`<p class="error" role="alert">${error}</p>`}
    </form>
  </main>`;
}

/** The stream's state: the latest overview, the recent samples and events, and whether it is live. */
function useLive(enabled, onUnauthorized) {
  const [live, setLive] = useState({ overview: null, samples: [], events: [], connected: false });
  useEffect(() => {
    if (!enabled) return undefined;
    let source;
    let retry;
    const connect = () => {
      source = new EventSource('/api/stream');
      source.addEventListener('history', (e) => {
        const { samples, events } = JSON.parse(e.data);
        setLive((s) => ({ ...s, samples, events }));
      });
      source.addEventListener('overview', (e) => setLive((s) => ({ ...s, overview: JSON.parse(e.data), connected: true })));
      source.addEventListener('sample', (e) => setLive((s) => ({ ...s, samples: [...s.samples, JSON.parse(e.data)].slice(-samplesKept) })));
      source.addEventListener('event', (e) => setLive((s) => ({ ...s, events: [...s.events, JSON.parse(e.data)].slice(-eventsKept) })));
      source.onerror = () => {
        setLive((s) => ({ ...s, connected: false }));
        // A session that ended needs a new login; otherwise the stream comes back by itself, or,
        // if the browser gave it up (an error status), here after a pause.
        api('/api/whoami').then((u) => {
          if (u.user === null) {
            source.close();
            onUnauthorized();
          } else if (source.readyState === EventSource.CLOSED) {
            retry = setTimeout(connect, 2000);
          }
        }, () => {
          if (source.readyState === EventSource.CLOSED) retry = setTimeout(connect, 2000);
        });
      };
    };
    connect();
    return () => {
      clearTimeout(retry);
      source.close();
    };
  }, [enabled]);
  return live;
}

function currentView() {
  const name = location.hash.replace(/^#/, '').split('?')[0];
  return views.some(([v]) => v === name) ? name : 'overview';
}

function App() {
  const [user, setUser] = useState(undefined);
  const [view, setView] = useState(currentView());
  const check = () => api('/api/whoami').then((u) => setUser(u.user), () => setUser(null));
  useEffect(() => {
    check();
    const onHash = () => setView(currentView());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  const live = useLive(typeof user === 'string', () => setUser(null));
  useEffect(() => {
    document.title = `cairn · ${views.find(([v]) => v === view)[1]}`;
  }, [view]);
  if (user === undefined) return html`<main><p>Loading…</p></main>`;
  if (user === null) return html`<${Login} onLogin=${check} />`;
  const logout = async () => {
    await api('/api/logout', { method: 'POST' }).catch(() => undefined);
    setUser(null);
  };
  const o = live.overview;
  return html`
    <header>
      <a class="brand" href="#overview"><img src="/favicon.svg" alt="" width="24" height="24" /> cairn</a>
      <span class="cluster">${o ? `cluster ${o.summary.clusterId || '(unnamed)'} · leader: master ${o.journal.leaderId ?? '—'} · term ${o.journal.term}` : 'connecting…'}</span>
      <span class=${`live ${live.connected ? 'on' : 'off'}`} role="status">${live.connected ? 'live' : 'reconnecting…'}</span>
      <span class="user">${user}</span>
      <button type="button" onClick=${logout}>Log out</button>
    </header>
    <nav aria-label="Views">
      ${views.map(([v, label]) => html`<a href=${`#${v}`} aria-current=${v === view ? 'page' : undefined}>${label}</a>`)}
    </nav>
    <main id="main">
      ${view === 'overview' && html`<${OverviewView} overview=${o} />`}
      ${view === 'charts' && html`<${ChartsView} samples=${live.samples} />`}
      ${view === 'journal' && html`<${JournalView} overview=${o} events=${live.events} />`}
      ${view === 'files' && html`<${FilesView} />`}
      ${view === 'events' && html`<${EventsView} events=${live.events} />`}
    </main>
  `;
}

render(html`<${App} />`, document.getElementById('app'));
