// A yes/no question on the terminal (on standard error, so that standard output stays the
// command's own); only "y" or "yes" is a yes.

import { createInterface } from 'node:readline/promises';

export async function ask(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}
