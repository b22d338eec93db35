// Form fields → the RoadRunner parsed-form tree (PROTOCOL.md §5.3). RR sends PHP a JSON tree of the
// POST fields (the body) and a tree of the same shape for files (the `uploads` context field); PHP
// json_decodes both. The tree rules are RR's handler/parse.go (fetchIndexes + mount), applied one
// value at a time because we parse while the body streams in:
//   name      → scalar; a repeated name keeps the LAST value (files: the FIRST file)
//   name[]    → array of every value, in order
//   a[b][c]   → nested objects; a[0] is the object key "0" (a JSON object, never a JSON array)
//   spaces anywhere in a name are dropped; a name deeper than MAX_FORM_DEPTH segments is dropped
//   a leaf/branch conflict (a=1 and a[b]=2, either order) → BadFormError (RR answers 500; we 400)
// Empty values follow RR's exceptions (the "options=&options[0][id]=x" case of parse.go): an empty
// leaf gives way to a branch, and an empty value never overwrites a branch or a non-empty array.
import { BadFormError, TooManyFieldsError } from '../errors.js';

/** One file of a multipart form, as RoadRunner's uploads tree gives it to PHP. */
export interface UploadedFile {
  /** the client's file name (path stripped) */
  name: string;
  /** the part's media type, lower-cased, without parameters; `text/plain` when the part has none (busboy) */
  mime: string;
  /** bytes in the temp file; 0 when error is not 0 */
  size: number;
  error: UploadError;
  /** absolute path of the temp file; '' when error is not 0 */
  tmpName: string;
}

/** PHP's UPLOAD_ERR_* codes that warmpool sets. */
export type UploadError = 0 | 1 | 4 | 6 | 7 | 8;
export const UPLOAD_ERR_OK = 0;
/** larger than uploads.max_file_size (PHP: upload_max_filesize) */
export const UPLOAD_ERR_INI_SIZE = 1;
/** a file input left empty (no file name) */
export const UPLOAD_ERR_NO_FILE = 4;
/** the temp file could not be created (uploads.dir missing or not writable) */
export const UPLOAD_ERR_NO_TMP_DIR = 6;
/** writing the temp file failed (disk full) */
export const UPLOAD_ERR_CANT_WRITE = 7;
/** the extension is in uploads.forbid, or uploads.allow is set and does not list it */
export const UPLOAD_ERR_EXTENSION = 8;

export type FormTree = { [key: string]: FormValue };
export type FormValue = string | UploadedFile | FormValue[] | FormTree;

/** RR's MaxLevel: a name with more segments than this (`a[1]…[127]` has 128) is dropped, as RR does. */
export const MAX_FORM_DEPTH = 127;

// Branches are the only objects we create; everything else object-shaped is an upload leaf.
const branches = new WeakSet<object>();

function isBranch(value: FormValue | undefined): value is FormTree {
  return typeof value === 'object' && branches.has(value);
}

/** An empty tree. Null prototype: a field named `__proto__` or `constructor` is just a key. */
export function createFormTree(): FormTree {
  const tree = Object.create(null) as FormTree;
  branches.add(tree);
  return tree;
}

/**
 * RR's fetchIndexes: `a[b][]` → ['a', 'b', '']. Spaces are dropped; `[` opens a segment, `]` after
 * `[` makes an empty one; any character after `[` or `]` starts a new segment (so `a]b` → ['a', 'b']).
 */
export function splitFormName(name: string): string[] {
  const keys = [''];
  let pos = 0; // 0: inside a segment; 1: just after '['; 2: just after ']'
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 0x20) continue;
    if (c === 0x5b /* [ */) {
      pos = 1;
      continue;
    }
    if (c === 0x5d /* ] */) {
      if (pos === 1) keys.push('');
      pos = 2;
      continue;
    }
    if (pos !== 0) keys.push(name[i]!);
    else keys[keys.length - 1] += name[i]!;
    pos = 0;
  }
  return keys;
}

function isEmptyValue(value: string | UploadedFile): boolean {
  return value === '';
}

// RR's isDataEmpty for what is already in the tree: "" or [""]. Upload leaves are never empty.
function isEmptyLeaf(value: FormValue): boolean {
  return value === '' || (Array.isArray(value) && (value.length === 0 || (value.length === 1 && value[0] === '')));
}

function pathOf(keys: readonly string[], depth: number): string {
  let path = keys[0]!;
  for (let i = 1; i <= depth; i++) path += `[${keys[i]!}]`;
  return path;
}

/**
 * Adds one field (a string) or one file (an upload leaf) to `tree` by the RR tree rules.
 * Returns whether the value was stored: false when RR's rules drop it (too deep, an empty value
 * against a branch, a second file under a plain name). Throws BadFormError on a leaf/branch conflict.
 */
export function addFormValue(tree: FormTree, name: string, value: string | UploadedFile): boolean {
  const keys = splitFormName(name);
  if (keys.length > MAX_FORM_DEPTH) return false;
  let node = tree;
  for (let depth = 0; ; depth++) {
    const key = keys[depth]!;
    const existing = Object.hasOwn(node, key) ? node[key] : undefined;
    const remaining = keys.length - depth - 1;

    if (remaining === 0) {
      // `name`: a scalar. Last string wins; the first file wins (RR mounts v[0] for files).
      if (existing === undefined) node[key] = value;
      else if (isBranch(existing)) {
        if (!isEmptyValue(value)) throw conflict(name, keys, depth, 'nested fields');
        return false;
      } else if (typeof value === 'object' && typeof existing === 'object' && !Array.isArray(existing)) return false;
      else if (Array.isArray(existing) && isEmptyValue(value) && !isEmptyLeaf(existing)) return false;
      else node[key] = value;
      return true;
    }

    if (remaining === 1 && keys[depth + 1] === '') {
      // `name[]`: every value, in order.
      if (existing === undefined) node[key] = [value];
      else if (Array.isArray(existing)) existing.push(value);
      else if (isBranch(existing)) {
        if (!isEmptyValue(value)) throw conflict(name, keys, depth, 'nested fields');
        return false;
      } else if (isEmptyValue(value) && !isEmptyLeaf(existing)) return false;
      else node[key] = [value];
      return true;
    }

    // `name[x]…`: descend, creating the branch; an empty leaf gives way to it.
    if (isBranch(existing)) node = existing;
    else if (existing === undefined || isEmptyLeaf(existing)) {
      const branch = createFormTree();
      node[key] = branch;
      node = branch;
    } else throw conflict(name, keys, depth, 'a value');
  }
}

function conflict(name: string, keys: readonly string[], depth: number, holds: string): BadFormError {
  const path = pathOf(keys, depth);
  return new BadFormError(
    `form field ${JSON.stringify(name)} conflicts with an earlier field: ${JSON.stringify(path)} already holds ${holds}; ` +
      'a name cannot be both a value and a group of values (rename one of the fields)',
    { field: name },
  );
}

const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEX[0x30 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX[0x41 + i] = 10 + i;
  HEX[0x61 + i] = 10 + i;
}

function hexValue(byte: number | undefined): number {
  return byte === undefined || byte >= 128 ? -1 : HEX[byte]!;
}

/**
 * application/x-www-form-urlencoded bytes [start, end) → text: `+` is a space, `%XX` a byte, and the
 * bytes are read as UTF-8 (invalid sequences become U+FFFD, as Go's JSON encoder would write them).
 * An invalid escape (`100%`, `%zz`) is kept literally, as PHP does; see parseUrlencoded.
 */
function decodeComponent(body: Buffer, start: number, end: number): string {
  let i = start;
  while (i < end && body[i] !== 0x25 /* % */ && body[i] !== 0x2b /* + */) i++;
  if (i === end) return body.toString('utf8', start, end);
  const out = Buffer.allocUnsafe(end - start);
  let n = body.copy(out, 0, start, i);
  while (i < end) {
    const byte = body[i]!;
    if (byte === 0x2b) {
      out[n++] = 0x20;
      i++;
    } else if (byte === 0x25 && i + 2 < end && hexValue(body[i + 1]) >= 0 && hexValue(body[i + 2]) >= 0) {
      out[n++] = hexValue(body[i + 1]) * 16 + hexValue(body[i + 2]);
      i += 3;
    } else {
      out[n++] = byte;
      i++;
    }
  }
  return out.toString('utf8', 0, n);
}

/**
 * An application/x-www-form-urlencoded body → the form tree (`{}` when empty).
 *
 * Pairs split on `&` only (`;` is an ordinary character, as in Go ≥ 1.17 and PHP); a pair without `=`
 * is a name with the value ''; empty pairs (`a=1&&b=2`) are skipped; names and values are
 * percent-decoded before the tree rules apply, so `a%5Bb%5D=1` is `a[b]`.
 *
 * Invalid percent escapes are kept literally (PHP's behaviour: `discount=100%` gives "100%"). RR
 * differs: Go's ParseQuery drops such a pair and returns an error, and RR then answers 500 for the
 * whole request, which is what `curl -d 'discount=100%'` would get there. We prefer the PHP reading.
 * Throws BadFormError on a leaf/branch conflict, TooManyFieldsError past `maxFields` (before parsing
 * the rest).
 */
export function parseUrlencoded(body: Buffer, maxFields: number | null = null): FormTree {
  const tree = createFormTree();
  const length = body.length;
  let start = 0;
  let fields = 0;
  while (start < length) {
    let end = body.indexOf(0x26 /* & */, start);
    if (end < 0) end = length;
    if (end > start) {
      if (maxFields !== null && ++fields > maxFields) throw new TooManyFieldsError(maxFields);
      let eq = body.indexOf(0x3d /* = */, start);
      if (eq < 0 || eq > end) eq = end;
      const name = decodeComponent(body, start, eq);
      const value = eq < end ? decodeComponent(body, eq + 1, end) : '';
      addFormValue(tree, name, value);
    }
    start = end + 1;
  }
  return tree;
}

/** request.body after the form parsers (see uploads.ts registerFormParsers) ran. */
export interface ParsedForm {
  readonly kind: 'urlencoded' | 'multipart';
  /** the text fields; sent to PHP as the body (JSON) */
  readonly fields: FormTree;
  /** the upload tree, sent as the context's `uploads`: `{}` for a multipart form without files; null for urlencoded */
  readonly uploads: FormTree | null;
}

const parsedForms = new WeakSet<object>();

export function createParsedForm(kind: ParsedForm['kind'], fields: FormTree, uploads: FormTree | null): ParsedForm {
  const form: ParsedForm = Object.freeze({ kind, fields, uploads });
  parsedForms.add(form);
  return form;
}

/** True only for what the form parsers produced (a JSON body shaped alike is not one). */
export function isParsedForm(body: unknown): body is ParsedForm {
  return typeof body === 'object' && body !== null && parsedForms.has(body);
}

/** The body RR sends PHP for a parsed form: the JSON text of the fields, `{}` when there are none (§5.3). */
export function encodeFormFields(fields: FormTree): Buffer {
  return Buffer.from(JSON.stringify(fields), 'utf8');
}
