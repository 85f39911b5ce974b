// Reads a V8 .cpuprofile (as written by `node --cpu-prof`) and ranks functions and files by self
// time, so a benchmark can say where a process spent its CPU.

import { readFileSync } from 'node:fs';
import path from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  /** `function (file:line)`, or a V8 pseudo-frame such as `(garbage collector)`. */
  name: string;
  selfMs: number;
  /** Share of the sampled time that was not idle. */
  share: number;
}

export interface ProfileSummary {
  sampledMs: number;
  idleMs: number;
  functions: SelfTime[];
  files: SelfTime[];
}

/**
 * Self time per function and per file, counting only samples inside `window` (monotonic clock, µs)
 * when given; paths are shown relative to `root` when inside it.
 */
export function summarizeProfile(file: string, root: string, window?: { from: number; to: number }): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const selfUs = new Map<number, number>();
  // A sample's time is the delta to the next sample (the last one has no successor: dropped).
  let at = profile.startTime;
  for (let i = 0; i + 1 < profile.samples.length; i++) {
    at += profile.timeDeltas[i];
    if (window !== undefined && (at < window.from || at > window.to)) continue;
    const id = profile.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + profile.timeDeltas[i + 1]);
  }
  const functions = new Map<string, number>();
  const files = new Map<string, number>();
  let idleUs = 0;
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    totalUs += us;
    if (frame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const where = displayPath(frame.url, root);
    const fn = frame.functionName || '(anonymous)';
    const key = where === '' ? fn : `${fn} (${where}:${frame.lineNumber + 1})`;
    functions.set(key, (functions.get(key) ?? 0) + us);
    const fileKey = where === '' ? fn : where;
    files.set(fileKey, (files.get(fileKey) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const rank = (m: Map<string, number>): SelfTime[] =>
    [...m].sort((a, b) => b[1] - a[1]).map(([name, us]) => ({ name, selfMs: us / 1000, share: busyUs > 0 ? us / busyUs : 0 }));
  return { sampledMs: totalUs / 1000, idleMs: idleUs / 1000, functions: rank(functions), files: rank(files) };
}

function displayPath(url: string, root: string): string {
  if (url === '') return '';
  const file = url.startsWith('file://') ? new URL(url).pathname : url;
  if (!path.isAbsolute(file)) return file;
  const rel = path.relative(root, file);
  if (!rel.startsWith('..')) return rel;
  const nm = file.lastIndexOf('/node_modules/');
  return nm >= 0 ? file.slice(nm + 1) : file;
}
