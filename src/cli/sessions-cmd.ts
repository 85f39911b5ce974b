// `cairn admin sessions [list] | end`: the write sessions open on the masters, and whether their
// clients still renew them. The masters end a session not renewed for --session-lease-ms (a client
// that died: a killed mount daemon, S3 gateway or `fs put`); until then a file deleted while it is
// open keeps its chunks. Client ids name their host and process (HOST:PID:RANDOM), so an operator
// can tell which are gone and end them at once.

import type { Command } from 'commander';
import type { MasterClient } from '../client/index.ts';
import type { Session } from '../meta/index.ts';
import { confirm } from './ask.ts';
import { withClient as run, type TargetFlags } from './cluster-target.ts';
import { configError, parsePositiveInt } from './config.ts';
import { jsonLine, printable } from './format.ts';

type Flags = TargetFlags & { json?: boolean; client?: string; olderThan?: string; yes?: boolean };

interface SessionsReply {
  /** With when the leader last heard each renewed (ms ago; null: not within the lease). */
  sessions: (Session & { renewedAgoMs?: number | null })[];
  matched: number;
  open: number;
  /** The lease, and how long the answering leader has led (it ends nothing before it has led a lease). */
  leaseMs?: number;
  ledMs?: number | null;
}

/** Sessions listed at most (the JSON too); `end` goes on in pages of this many. */
const sessionsListedMax = 1000;

export function registerSessionsCommands(admin: Command, addTargetOptions: (c: Command) => Command): void {
  const s = admin.command('sessions').description('write sessions open on the masters (a dead client leaves its own open)');
  const filters = (c: Command): Command => c.option('--client <prefix>', 'only sessions of clients whose id starts so (ids are HOST:PID:RANDOM)').option('--older-than <seconds>', 'only sessions opened at least this long ago');
  addTargetOptions(filters(s.command('list', { isDefault: true })).option('--json', 'print JSON'))
    .description('list open write sessions, oldest first: client, inode, age')
    .action((o: Flags) =>
      run(o, async (c) => {
        const reply = await sessions(c, o);
        if (o.json) return console.log(jsonLine(reply));
        const now = Date.now();
        console.log(`${reply.open} session${reply.open === 1 ? '' : 's'} open; ${reply.matched} match${reply.matched > reply.sessions.length ? `, the oldest ${reply.sessions.length} listed` : ''}`);
        for (const x of reply.sessions) console.log(`${printable(x.sessionId)}\tinode ${x.inodeId}\tclient ${printable(x.clientId)}\topened ${new Date(x.openedMs).toISOString()} (${Math.round((now - x.openedMs) / 1000)} s ago)\t${renewal(x.renewedAgoMs, reply)}`);
        if (reply.sessions.length > 0) console.log('(a file of an inode: cairn fs find --inode N; end the sessions of a client that is gone now: cairn admin sessions end --client HOST:PID:)');
      }),
    );
  addTargetOptions(filters(s.command('end')).argument('[ids...]', 'session ids (or use --client / --older-than)').option('--yes', 'do not ask for confirmation (needed when not on a terminal)').option('--json', 'print the result as JSON'))
    .description("end write sessions, as their clients would have: only those of clients that are gone (a live writer's session ended early lets its file's chunks be collected if the file is deleted while it writes)")
    .action((ids: string[], o: Flags) => run(o, (c) => end(c, ids, o)));
}

/** What the leader knows of a session's lease, in words. */
function renewal(renewedAgoMs: number | null | undefined, reply: SessionsReply): string {
  if (renewedAgoMs === undefined || reply.leaseMs === undefined) return '';
  const s = (ms: number): string => `${Math.round(ms / 1000)} s`;
  if (renewedAgoMs !== null) return `renewed ${s(renewedAgoMs)} ago`;
  const waitMs = reply.leaseMs - (reply.ledMs ?? 0);
  return waitMs > 0 ? `not renewed with this leader yet (it ends sessions once it has led ${s(reply.leaseMs)}: in ${s(waitMs)})` : `not renewed for ${s(reply.leaseMs)}: ending`;
}

function filterOf(o: Flags): { client?: string; openedBeforeMs?: number } {
  const out: { client?: string; openedBeforeMs?: number } = {};
  if (o.client !== undefined) {
    if (o.client === '') throw configError('--client must not be empty (it would match every client)');
    out.client = o.client;
  }
  if (o.olderThan !== undefined) out.openedBeforeMs = Date.now() - parsePositiveInt(o.olderThan, '--older-than') * 1000;
  return out;
}

function sessions(c: MasterClient, o: Flags, limit = sessionsListedMax): Promise<SessionsReply> {
  return c.query<SessionsReply>('meta.query', { op: 'sessions', limit, ...filterOf(o) });
}

async function end(c: MasterClient, ids: string[], o: Flags): Promise<void> {
  const filtered = o.client !== undefined || o.olderThan !== undefined;
  if (ids.length > 0 === filtered) throw configError('name the sessions to end: session ids, or --client and/or --older-than (not both)');
  const first = filtered ? await sessions(c, o) : undefined;
  const count = first?.matched ?? ids.length;
  if (count === 0) {
    if (o.json) console.log(jsonLine({ ended: 0, missing: 0 }));
    else console.log('no session matches: nothing to end');
    return;
  }
  const what = `${count} write session${count === 1 ? '' : 's'}`;
  await confirm(o.yes === true, `cairn: end ${what}? Only sessions of clients that are gone should end. [y/N] `, `ending ${what} is for clients that are gone`, 'ended');
  let ended = 0;
  let missing = 0;
  const endOne = async (sessionId: string): Promise<void> => {
    try {
      await c.mutate('meta.mutate', { op: 'closeSession', sessionId, abandoned: true });
      ended++;
    } catch (err) {
      // Ended meanwhile by its client, or a mistyped id.
      if ((err as { code?: string }).code !== 'ENOENT') throw err;
      missing++;
      if (!filtered) console.error(`cairn: no open session '${printable(sessionId)}'`);
    }
  };
  if (!filtered) for (const id of ids) await endOne(id);
  else {
    // Page after page, as what matched is ended; a page that ends nothing new stops it.
    for (let page = first!; page.sessions.length > 0; page = await sessions(c, o)) {
      const before = ended;
      for (const x of page.sessions) await endOne(x.sessionId);
      if (ended === before) break;
    }
  }
  if (o.json) console.log(jsonLine({ ended, missing }));
  else console.log(`ended ${ended} session${ended === 1 ? '' : 's'}${missing > 0 ? `; ${missing} ${missing === 1 ? 'was' : 'were'} not open` : ''}`);
  if (!filtered && missing > 0) process.exitCode = 1;
}
