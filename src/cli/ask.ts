// A yes/no question on the terminal (on standard error, so that standard output stays the
// command's own); only "y" or "yes" is a yes.

import { createInterface } from 'node:readline/promises';
import { CairnError, ErrorCode } from '../errors.ts';

export async function ask(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

/**
 * Returns only once the user agreed to something that cannot be undone: `yes` (--yes), or a yes
 * to `question` on a terminal. Off a terminal without --yes it refuses with `refusal`, and a no
 * refuses too; either way nothing was done yet ("nothing <undone>").
 */
export async function confirm(yes: boolean, question: string, refusal: string, undone: string): Promise<void> {
  if (yes) return;
  if (process.stdin.isTTY !== true) throw new CairnError(ErrorCode.NotConfirmed, `${refusal}; pass --yes to confirm (nothing ${undone})`);
  if (!(await ask(question))) throw new CairnError(ErrorCode.NotConfirmed, `not confirmed (nothing ${undone})`);
}
