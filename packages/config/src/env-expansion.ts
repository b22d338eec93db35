// `${NAME}` / `${NAME:-default}` expansion of one string value. It runs on string scalars AFTER the
// YAML is parsed, so a variable's value can never change the file's structure (a value holding
// ": " or a newline stays one string), and every result still maps to its line.
//
// Grammar (docker-compose's, minus the forms we do not need):
//   ${NAME}            the variable; an error when it is not set
//   ${NAME:-default}   the variable when set and not empty, else `default` (taken literally up to "}")
//   $$                 a literal "$"
//   $ followed by anything else is kept as is; in particular a bare $NAME is NOT expanded (RoadRunner
//   expands it; the caller warns about it, except in server.env where the pool expands it at spawn).

/** Where variables come from: process.env or an object passed to parseConfig. */
export type Env = Readonly<Record<string, string | undefined>>;

export type Expansion =
  | {
      ok: true;
      value: string;
      /** whether the text held a ${...} reference (so its type may be converted: "8" → 8) */
      expanded: boolean;
      /** bare $NAME occurrences left unexpanded, for the caller's warning */
      bare: string[];
    }
  | { ok: false; kind: 'undefined'; variable: string }
  | { ok: false; kind: 'syntax'; message: string };

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const BARE_NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

/** Expands one string; the first problem stops it (one error per value is enough to fix it). */
export function expandVariables(text: string, env: Env): Expansion {
  if (!text.includes('$')) return { ok: true, value: text, expanded: false, bare: [] };
  let out = '';
  let expanded = false;
  const bare: string[] = [];
  let i = 0;
  while (i < text.length) {
    const dollar = text.indexOf('$', i);
    if (dollar < 0) {
      out += text.slice(i);
      break;
    }
    out += text.slice(i, dollar);
    const next = text[dollar + 1];
    if (next === '$') {
      out += '$';
      i = dollar + 2;
      continue;
    }
    if (next !== '{') {
      const name = BARE_NAME.exec(text.slice(dollar + 1))?.[0];
      if (name !== undefined) bare.push(name);
      out += '$';
      i = dollar + 1;
      continue;
    }
    const close = text.indexOf('}', dollar + 2);
    if (close < 0) {
      return {
        ok: false,
        kind: 'syntax',
        message: `unterminated "\${" in ${JSON.stringify(text)}; write \${NAME} or \${NAME:-default}, and $$ for a literal $`,
      };
    }
    const body = text.slice(dollar + 2, close);
    const sep = body.indexOf(':-');
    const name = sep < 0 ? body : body.slice(0, sep);
    if (!NAME.test(name)) {
      return {
        ok: false,
        kind: 'syntax',
        message: `"\${${body}}" is not a variable reference; write \${NAME} or \${NAME:-default}, and $$ for a literal $`,
      };
    }
    const value = env[name];
    if (sep < 0) {
      if (value === undefined) return { ok: false, kind: 'undefined', variable: name };
      out += value;
    } else {
      out += value === undefined || value === '' ? body.slice(sep + 2) : value;
    }
    expanded = true;
    i = close + 1;
  }
  return { ok: true, value: out, expanded, bare };
}
