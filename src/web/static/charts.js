// Live charts (uPlot): bytes the workers read and wrote, metadata operations and journal entries
// per second, and metadata latency quantiles, over the last five minutes the leader sampled.

import { h } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import htm from 'htm';
import uPlot from 'uplot';
import { formatBytes } from './api.js';

const html = htm.bind(h);

const charts = [
  {
    id: 'throughput',
    title: 'Data throughput (workers)',
    unit: (v) => `${formatBytes(v)}/s`,
    series: [
      { label: 'read', key: 'readBytesPerS', stroke: '#1d6fa5' },
      { label: 'written', key: 'writtenBytesPerS', stroke: '#b35900' },
    ],
  },
  {
    id: 'operations',
    title: 'Metadata operations per second',
    unit: (v) => `${v.toFixed(1)}/s`,
    series: [
      { label: 'operations', key: 'metaOpsPerS', stroke: '#2f7d32' },
      { label: 'journal entries', key: 'entriesPerS', stroke: '#6a3d9a' },
    ],
  },
  {
    id: 'latency',
    title: 'Metadata latency',
    unit: (v) => `${v.toFixed(2)} ms`,
    series: [
      { label: 'p50', key: 'metaP50Ms', stroke: '#1d6fa5' },
      { label: 'p99', key: 'metaP99Ms', stroke: '#b3261e' },
    ],
  },
];

function toData(samples, chart) {
  return [samples.map((s) => s.atMs / 1000), ...chart.series.map((x) => samples.map((s) => s[x.key]))];
}

function Chart({ chart, samples }) {
  const box = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    const width = () => Math.max(300, box.current.clientWidth);
    plot.current = new uPlot(
      {
        width: width(),
        height: 220,
        series: [{}, ...chart.series.map((x) => ({ label: x.label, stroke: x.stroke, width: 2, value: (_, v) => (v === null || v === undefined ? '—' : chart.unit(v)) }))],
        axes: [{}, { values: (_, ticks) => ticks.map(chart.unit), size: 90 }],
        scales: { y: { range: (_, min, max) => [0, Math.max(max, 1) * 1.1] } },
      },
      toData(samples, chart),
      box.current,
    );
    const resize = () => plot.current.setSize({ width: width(), height: 220 });
    addEventListener('resize', resize);
    return () => {
      removeEventListener('resize', resize);
      plot.current.destroy();
    };
  }, []);
  useEffect(() => {
    plot.current?.setData(toData(samples, chart));
  }, [samples]);
  const last = samples.at(-1);
  const now = chart.series.map((x) => `${x.label} ${last?.[x.key] === null || last === undefined ? '—' : chart.unit(last[x.key])}`).join(', ');
  return html`<figure class="chart" aria-labelledby=${`${chart.id}-title`}>
    <figcaption id=${`${chart.id}-title`}>${chart.title} <span class="note">now: ${now}</span></figcaption>
    <div ref=${box} role="img" aria-label=${`${chart.title} over the last ${samples.length} seconds; now ${now}`}></div>
  </figure>`;
}

export function ChartsView({ samples }) {
  return html`
    <h1>Throughput and latency</h1>
    <p class="note">Sampled by the leading master once a second from workers' heartbeats and its own metadata operations (the last five minutes). Prometheus keeps longer history: see docs/operations.md.</p>
    ${charts.map((c) => html`<${Chart} key=${c.id} chart=${c} samples=${samples} />`)}
  `;
}
