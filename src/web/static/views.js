// The dashboard's views: the cluster overview, the journal, the file browser and recent events.

import { h } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import htm from 'htm';
import { api, formatBytes, formatTime } from './api.js';

const html = htm.bind(h);
/** Rows a table shows before it says how many more there are (a big cluster has thousands of chains). */
const rowsShown = 200;

function State({ state }) {
  return html`<span class=${`state state-${state}`}>${state}</span>`;
}

function Card({ id, label, value, note, tone }) {
  return html`<div class=${`card ${tone ?? ''}`}>
    <div class="card-label" id=${`${id}-label`}>${label}</div>
    <div class="card-value" data-testid=${id} aria-labelledby=${`${id}-label`}>${value}</div>
    ${note && html`<div class="card-note">${note}</div>`}
  </div>`;
}

function Table({ caption, head, rows, empty, testid }) {
  const shown = rows.slice(0, rowsShown);
  return html`<div class="table-wrap">
    <table data-testid=${testid}>
      <caption>${caption}</caption>
      <thead><tr>${head.map((c) => html`<th scope="col">${c}</th>`)}</tr></thead>
      <tbody>
        ${shown.length === 0 ? html`<tr><td colspan=${head.length}>${empty}</td></tr>` : shown}
      </tbody>
    </table>
    ${rows.length > shown.length && html`<p class="note">${rows.length - shown.length} more not shown (cairn admin ${testid} lists all).</p>`}
  </div>`;
}

export function OverviewView({ overview: o }) {
  if (!o) return html`<h1>Overview</h1><p>Waiting for the leader's first picture…</p>`;
  const s = o.summary;
  const byState = Object.entries(s.targetsByState).map(([st, n]) => `${n} ${st}`).join(', ') || 'none';
  const usedShare = s.capacityBytes > 0 ? ` (${((100 * s.usedBytes) / s.capacityBytes).toFixed(1)}%)` : '';
  return html`
    <h1>Overview</h1>
    <section class="cards" aria-label="Summary">
      <${Card} id="summary-masters" label="Masters" value=${o.masters.length} note=${`${o.journal.backend} journal, applied ${o.journal.appliedIndex}`} />
      <${Card} id="summary-workers" label="Workers" value=${s.workers} note=${`${o.workers.filter((w) => w.online).length} online`} />
      <${Card} id="summary-targets" label="Targets" value=${s.targets} note=${byState} tone=${s.targets > (s.targetsByState.serving ?? 0) ? 'warn' : ''} />
      <${Card} id="summary-chains" label="Chains" value=${s.chains} note=${`${s.chainsDegraded.length} degraded, ${s.chainsUnavailable.length} unavailable`} tone=${s.chainsUnavailable.length > 0 ? 'bad' : s.chainsDegraded.length > 0 ? 'warn' : ''} />
      <${Card} id="summary-capacity" label="Capacity" value=${formatBytes(s.capacityBytes)} note=${`${formatBytes(s.usedBytes)} used${usedShare}`} />
      <${Card} id="summary-routing" label="Routing version" value=${s.routingVersion} />
    </section>
    <section aria-labelledby="masters-h">
      <h2 id="masters-h">Masters</h2>
      <${Table} testid="masters" caption="Metadata masters: role, term and how far each trails the leader" head=${['Id', 'Address', 'Role', 'Term', 'Applied index', 'Lag (entries)']} empty="no masters"
        rows=${o.masters.map((m) => html`<tr><td>${m.id}${m.isLeader ? ' ★' : ''}</td><td>${m.address}</td><td><${State} state=${m.role} /></td><td>${m.term ?? '—'}</td><td>${m.appliedIndex ?? '—'}</td><td>${m.lagEntries ?? '—'}</td></tr>`)} />
    </section>
    <section aria-labelledby="workers-h">
      <h2 id="workers-h">Workers</h2>
      <${Table} testid="nodes" caption="Storage workers and their last heartbeat" head=${['Id', 'Address', 'Domain', 'Status', 'Last heartbeat', 'Targets']} empty="no workers registered yet"
        rows=${o.workers.map((w) => html`<tr data-worker=${w.workerId}><td>${w.workerId}</td><td>${w.address}</td><td>${w.domain || '—'}</td><td><${State} state=${w.decommissioned ? 'decommissioned' : w.online ? 'online' : 'offline'} /></td><td>${w.heartbeatAgeMs === null ? '—' : `${(w.heartbeatAgeMs / 1000).toFixed(1)} s ago`}</td><td>${w.targetIds.join(', ')}</td></tr>`)} />
    </section>
    <section aria-labelledby="targets-h">
      <h2 id="targets-h">Targets</h2>
      <${Table} testid="targets" caption="Targets (one per disk directory): state, chain, use" head=${['Id', 'Worker', 'State', 'Chain', 'Used', 'Capacity', 'Chunks', 'Path']} empty="no targets"
        rows=${o.targets.map((t) => html`<tr data-target=${t.targetId} data-state=${t.state}><td>${t.targetId}</td><td>${t.workerId}</td><td><${State} state=${t.state} /></td><td>${t.chainId || '—'}</td><td>${formatBytes(t.usedBytes)}</td><td>${formatBytes(t.capacityBytes)}</td><td>${t.chunks ?? '—'}${t.chunksCorrupt ? html` <span class="state state-offline">${t.chunksCorrupt} corrupt</span>` : ''}</td><td>${t.path}</td></tr>`)} />
    </section>
    <section aria-labelledby="chains-h">
      <h2 id="chains-h">Chains</h2>
      <${Table} testid="chains" caption="Replication chains, head first, with their version" head=${['Chain', 'Version', 'Members (head → tail)']} empty="no chains yet"
        rows=${o.chains.map((c) => html`<tr><td>${c.chainId}${c.moving ? ' (moving)' : ''}</td><td>${c.version}</td><td class="members">${c.members.map((m) => html`<span class=${`member state-${m.state}`} title=${m.state}>${m.targetId}</span>`)}</td></tr>`)} />
    </section>
  `;
}

export function JournalView({ overview: o, events }) {
  const leaders = events.filter((e) => e.kind === 'leader').reverse();
  const checkpoints = events.filter((e) => e.kind === 'checkpoint').reverse();
  const j = o?.journal;
  return html`
    <h1>Journal</h1>
    ${j && html`<section class="cards" aria-label="Journal state">
      <${Card} id="journal-backend" label="Backend" value=${j.backend} />
      <${Card} id="journal-term" label="Term" value=${j.term} note=${`leader: master ${j.leaderId ?? '—'}`} />
      <${Card} id="journal-commit" label="Commit index" value=${j.commitIndex} note=${`applied ${j.appliedIndex}`} />
      <${Card} id="journal-snapshot" label="Latest checkpoint" value=${j.snapshotIndex} note=${`log holds ${j.firstIndex}…${j.lastIndex}`} />
    </section>`}
    <section aria-labelledby="leaders-h">
      <h2 id="leaders-h">Leader history</h2>
      <${Table} testid="leaders" caption="Leader changes this master saw since it started" head=${['Time', 'Change']} empty="no change since this master started"
        rows=${leaders.map((e) => html`<tr><td>${formatTime(e.atMs)}</td><td>${e.text}</td></tr>`)} />
    </section>
    <section aria-labelledby="checkpoints-h">
      <h2 id="checkpoints-h">Checkpoints</h2>
      <${Table} testid="checkpoints" caption="Checkpoints (snapshots of the metadata) this master saw" head=${['Time', 'Checkpoint']} empty="none since this master started"
        rows=${checkpoints.map((e) => html`<tr><td>${formatTime(e.atMs)}</td><td>${e.text}</td></tr>`)} />
    </section>
  `;
}

export function EventsView({ events }) {
  const recent = [...events].reverse();
  return html`
    <h1>Recent events</h1>
    <p class="note">Failovers, workers joining and restarting, target state changes and resyncs, as the leading master saw them since it started.</p>
    <${Table} testid="events" caption="Events, newest first" head=${['Time', 'Kind', 'Event']} empty="nothing happened yet"
      rows=${recent.map((e) => html`<tr><td>${formatTime(e.atMs)}</td><td>${e.kind}</td><td>${e.text}</td></tr>`)} />
  `;
}

/** The path in the hash (#files?path=/a/b), so that a listing can be linked and the back button works. */
function hashPath() {
  const q = location.hash.indexOf('?');
  return (q < 0 ? null : new URLSearchParams(location.hash.slice(q + 1)).get('path')) || '/';
}

const join = (dir, name) => (dir === '/' ? `/${name}` : `${dir}/${name}`);

export function FilesView() {
  const [path, setPath] = useState(hashPath());
  const [listing, setListing] = useState({ entries: [], next: null, loading: true, error: '' });
  const [selected, setSelected] = useState(null);
  useEffect(() => {
    const onHash = () => setPath(hashPath());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  const load = async (after) => {
    setListing((l) => ({ ...l, loading: true, error: '' }));
    try {
      const page = await api(`/api/fs/list?path=${encodeURIComponent(path)}${after ? `&after=${encodeURIComponent(after)}` : ''}`);
      setListing((l) => ({ entries: after ? [...l.entries, ...page.entries] : page.entries, next: page.next, loading: false, error: '' }));
    } catch (err) {
      setListing({ entries: [], next: null, loading: false, error: err.message });
    }
  };
  useEffect(() => {
    setSelected(null);
    load(null);
  }, [path]);
  const open = async (entry) => {
    if (entry.type === 'dir') return void (location.hash = `#files?path=${encodeURIComponent(join(path, entry.name))}`);
    try {
      setSelected({ path: join(path, entry.name), attr: await api(`/api/fs/stat?path=${encodeURIComponent(join(path, entry.name))}`) });
    } catch (err) {
      setSelected({ path: join(path, entry.name), error: err.message });
    }
  };
  const parts = path.split('/').filter(Boolean);
  return html`
    <h1>Files</h1>
    <nav aria-label="Path" class="crumbs">
      <a href="#files?path=/">/</a>${parts.map((p, i) => html`<a href=${`#files?path=${encodeURIComponent(`/${parts.slice(0, i + 1).join('/')}`)}`}>${p}</a>`)}
    </nav>
    ${listing.error && html`<p class="error" role="alert">${listing.error}</p>`}
    <div class="files">
      <${Table} testid="files" caption=${`Entries of ${path}`} head=${['Name', 'Type', 'Size', 'Modified', 'Owner']} empty=${listing.loading ? 'loading…' : 'empty directory'}
        rows=${listing.entries.map((e) => html`<tr><td><button type="button" class="link" onClick=${() => open(e)}>${e.name}${e.type === 'dir' ? '/' : ''}</button></td><td>${e.type}</td><td>${e.type === 'dir' ? '—' : formatBytes(e.sizeBytes)}</td><td>${e.mtimeMs ? formatTime(e.mtimeMs) : '—'}</td><td>${e.uid ?? '—'}</td></tr>`)} />
      ${selected && html`<aside class="details" aria-label="File details" data-testid="file-details">
        <h2>${selected.path}</h2>
        ${selected.error ? html`<p class="error" role="alert">${selected.error}</p>` : html`
          <dl>
            <dt>Size</dt><dd>${formatBytes(selected.attr.sizeBytes)} (${selected.attr.sizeBytes} bytes)</dd>
            <dt>Mode</dt><dd>${(selected.attr.mode & 0o7777).toString(8).padStart(4, '0')}</dd>
            <dt>Owner</dt><dd>uid ${selected.attr.uid}, gid ${selected.attr.gid}</dd>
            <dt>Modified</dt><dd>${formatTime(selected.attr.mtimeMs)}</dd>
            <dt>Inode</dt><dd>${selected.attr.inodeId}</dd>
          </dl>
          ${selected.attr.type === 'file' && html`<a class="button" href=${`/api/fs/download?path=${encodeURIComponent(selected.path)}`} download>Download</a>`}
        `}
      </aside>`}
    </div>
    ${listing.next && html`<button type="button" onClick=${() => load(listing.next)} disabled=${listing.loading}>Load more</button>`}
  `;
}
