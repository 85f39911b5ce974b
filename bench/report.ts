// The shared output of every benchmark: the machine, the configuration and each figure with its
// unit, printed as a table and written as JSON to bench/results/NAME-<ISO date>.json.

import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatBytes } from '../src/bytes.ts';

export interface Machine {
  cpuModel: string;
  cpuCount: number;
  memoryTotalBytes: number;
  node: string;
  platform: string;
  arch: string;
}

export interface Figure {
  name: string;
  value: number;
  unit: string;
}

export type ConfigValue = string | number | boolean;

export function machine(): Machine {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cpuCount: cpus.length,
    memoryTotalBytes: os.totalmem(),
    node: process.version,
    platform: os.platform(),
    arch: os.arch(),
  };
}

/** Collects one benchmark run's configuration, figures and notes, then prints and saves them. */
export class Report {
  readonly name: string;
  readonly machine: Machine;
  private readonly startedAt: Date;
  private readonly config: Record<string, ConfigValue> = {};
  private readonly figures: Figure[] = [];
  private readonly notes: string[] = [];
  private readonly tables: Table[] = [];
  private readonly extra: Record<string, unknown> = {};

  constructor(name: string) {
    this.name = name;
    this.machine = machine();
    this.startedAt = new Date();
    const m = this.machine;
    console.log(`benchmark ${name}`);
    console.log(`machine:  ${m.cpuModel} x ${m.cpuCount}, ${formatBytes(m.memoryTotalBytes)} RAM, Node ${m.node}, ${m.platform}/${m.arch}`);
  }

  /** Records and prints the configuration; call before measuring so it shows even if a run fails. */
  configure(config: Record<string, ConfigValue>): void {
    Object.assign(this.config, config);
    console.log('configuration:');
    const width = Math.max(...Object.keys(config).map((k) => k.length));
    for (const [k, v] of Object.entries(config)) console.log(`  ${k.padEnd(width)}  ${v}`);
  }

  /** A line of context printed as it comes and kept in the JSON (e.g. which anchor ran). */
  note(text: string): void {
    this.notes.push(text);
    console.log(`note: ${text}`);
  }

  figure(name: string, value: number, unit: string): void {
    this.figures.push({ name, value, unit });
  }

  /** A table printed after the figures (systems side by side), kept in the JSON too. */
  table(title: string, header: string[], rows: string[][]): void {
    this.tables.push({ title, header, rows });
  }

  /** Data that belongs in the JSON but not in the table (per-phase details, checksums). */
  attach(key: string, value: unknown): void {
    this.extra[key] = value;
  }

  /** Prints the figures and writes the JSON result; returns its path. */
  finish(): string {
    console.log('results:');
    const nameWidth = Math.max(...this.figures.map((f) => f.name.length));
    const values = this.figures.map((f) => formatNumber(f.value));
    const valueWidth = Math.max(...values.map((v) => v.length));
    this.figures.forEach((f, i) => console.log(`  ${f.name.padEnd(nameWidth)}  ${values[i].padStart(valueWidth)} ${f.unit}`));
    for (const t of this.tables) printTable(t);

    const dir = path.join(import.meta.dirname, 'results');
    mkdirSync(dir, { recursive: true });
    // Colons are not allowed in Windows file names; the date stays ISO 8601 otherwise.
    const stamp = this.startedAt.toISOString().replaceAll(':', '-');
    const file = path.join(dir, `${this.name}-${stamp}.json`);
    const result = {
      name: this.name,
      startedAt: this.startedAt.toISOString(),
      machine: this.machine,
      config: this.config,
      figures: this.figures,
      notes: this.notes,
      tables: this.tables,
      ...this.extra,
    };
    writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
    console.log(`written:  ${path.relative(process.cwd(), file)}`);
    return file;
  }
}

export interface Table {
  title: string;
  header: string[];
  rows: string[][];
}

/** A Markdown table (so it can be pasted into the docs as it is), columns padded to line up. */
function printTable(t: Table): void {
  const widths = t.header.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  console.log(`${t.title}:`);
  console.log(line(t.header));
  console.log(`|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const r of t.rows) console.log(line(t.header.map((_, i) => r[i] ?? '')));
}

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const abs = Math.abs(v);
  if (abs >= 1000) return Math.round(v).toLocaleString('en-US');
  if (Number.isInteger(v)) return String(v);
  if (abs >= 100) return v.toFixed(1);
  if (abs >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}
