// How the CLI shows names, paths and modes to people: names are untrusted (a newline or ESC in a
// name is legal), so human-readable output escapes what could fake lines or drive a terminal.

/**
 * Bidirectional-text controls and the Unicode line and paragraph separators: invisible, they can
 * reorder or break what a terminal shows.
 */
const unicodeControls = '\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069';
const escaped = new RegExp(`[\\\\\\u0000-\\u001f\\u007f-\\u009f${unicodeControls}]`, 'g');
const shortEscapes: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\t': '\\t', '\r': '\\r' };

/**
 * `text` safe to print on one line: a backslash doubled; newline, tab and carriage return as
 * `\n`, `\t`, `\r`; other C0 controls, DEL and C1 controls as `\xHH`; bidi controls and the line
 * and paragraph separators as `\uHHHH`. Everything else unchanged, so names stay readable, and
 * distinct names print distinct.
 */
export function printable(text: string): string {
  return text.replace(escaped, (c) => shortEscapes[c] ?? escapeCode(c.charCodeAt(0)));
}

function escapeCode(code: number): string {
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** JSON.stringify leaves these raw inside strings; as \u escapes they decode to the same text. */
const jsonRaw = new RegExp(`[\\u007f-\\u009f${unicodeControls}]`, 'g');

/** `value` as one line of JSON, names exact, with no character in it that a terminal acts on. */
export function jsonLine(value: unknown): string {
  return JSON.stringify(value).replace(jsonRaw, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const typeLetters: Record<string, string> = { file: '-', dir: 'd', symlink: 'l', fifo: 'p', socket: 's', chardev: 'c', blockdev: 'b' };

/** A mode as `ls -l` shows it: the type letter, then rwx for user, group, other, with setuid, setgid and sticky as s/S and t/T. */
export function modeString(type: string, mode: number): string {
  const bits = (shift: number, special: boolean, letter: string): string => {
    const r = mode & (0o4 << shift) ? 'r' : '-';
    const w = mode & (0o2 << shift) ? 'w' : '-';
    const x = (mode & (0o1 << shift)) !== 0;
    return `${r}${w}${special ? (x ? letter : letter.toUpperCase()) : x ? 'x' : '-'}`;
  };
  const user = bits(6, (mode & 0o4000) !== 0, 's');
  const group = bits(3, (mode & 0o2000) !== 0, 's');
  const other = bits(0, (mode & 0o1000) !== 0, 't');
  return `${typeLetters[type] ?? '?'}${user}${group}${other}`;
}
