// publish: the end of a put (src/client/files.ts putFile) as one journal entry: its write session
// closed, its final mode and object metadata set, its temporary file renamed into place. Every
// check runs before the first change, so the entry does all of it or nothing. Pure.

import { assert } from '../errors.ts';
import type { PublishCommand, SetattrCommand } from './commands.ts';
import { XattrFlag } from './commands.ts';
import { FsErrorCode } from './errors.ts';
import { attrOf, fail, isFail, ok } from './namespace-state.ts';
import type { MetaResult, MetaTables, MetaValues } from './namespace-state.ts';
import { applyRename, closeSession, planRename, resolve, setattr, setattrDenied } from './namespace-tree.ts';
import { putXattr, xattrSettable } from './namespace-xattrs.ts';

export function publish(t: MetaTables, cmd: PublishCommand): MetaResult<MetaValues['publish']> {
  const session = t.sessions.get(cmd.sessionId);
  if (session === undefined) return fail(FsErrorCode.ENOENT, `no open session '${cmd.sessionId}'`);
  const file = resolve(t, cmd.from, cmd.caller);
  if (isFail(file)) return file;
  if (file.id !== session.inodeId) return fail(FsErrorCode.EINVAL, `'${cmd.from}' is not the file of session '${cmd.sessionId}' (inode ${session.inodeId})`);
  const stamp = { clientId: cmd.clientId, seq: cmd.seq, nowMs: cmd.nowMs, caller: cmd.caller };
  // Checked in the order the steps run: the attribute while the file is still writable, the mode
  // (its owner's), then the rename (its directories'), which neither of the others affects.
  const { xattrName, xattrValue } = cmd;
  if (xattrName !== undefined && xattrValue !== undefined) {
    const settable = xattrSettable(t, cmd.from, cmd.caller, xattrName, xattrValue, XattrFlag.Any);
    if (isFail(settable)) return settable;
  }
  const chmod: SetattrCommand | undefined = cmd.mode === undefined ? undefined : { op: 'setattr', ...stamp, path: cmd.from, mode: cmd.mode, timesNow: false };
  if (chmod !== undefined) {
    const denied = setattrDenied(chmod, file);
    if (denied !== undefined) return denied;
  }
  const plan = planRename(t, { op: 'rename', ...stamp, from: cmd.from, to: cmd.to, ...(cmd.replacing === undefined ? {} : { replacing: cmd.replacing }) });
  if (isFail(plan)) return plan;
  // Nothing below can fail: every check passed above, and a failure now would leave half a publish.
  const closed = closeSession(t, { op: 'closeSession', ...stamp, sessionId: cmd.sessionId, lengthBytes: cmd.lengthBytes, ...(cmd.chunks === undefined ? {} : { chunks: cmd.chunks }) });
  assert(!isFail(closed), 'a session close refused after its check');
  if (xattrName !== undefined && xattrValue !== undefined) putXattr(file, xattrName, xattrValue, cmd.nowMs);
  if (chmod !== undefined) assert(!isFail(setattr(t, chmod)), 'a mode change refused after its check');
  const renamed = applyRename(t, plan, cmd.nowMs);
  return ok({ inode: attrOf(file), replaced: renamed.replaced });
}
