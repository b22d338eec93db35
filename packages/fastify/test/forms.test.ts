import { describe, expect, it } from 'vitest';
import {
  addFormValue,
  createFormTree,
  createParsedForm,
  encodeFormFields,
  isParsedForm,
  MAX_FORM_DEPTH,
  parseUrlencoded,
  splitFormName,
  type FormTree,
} from '../src/http/forms.js';
import type { UploadedFile } from '../src/http/uploads.js';
import { BadFormError, TooManyFieldsError } from '../src/errors.js';

/** What PHP receives: the JSON text of the tree, decoded back. */
function wire(tree: FormTree): unknown {
  return JSON.parse(encodeFormFields(tree).toString('utf8'));
}

function form(body: string | Buffer): unknown {
  return wire(parseUrlencoded(typeof body === 'string' ? Buffer.from(body, 'utf8') : body));
}

function conflictOf(body: string): BadFormError {
  try {
    parseUrlencoded(Buffer.from(body));
  } catch (error) {
    return error as BadFormError;
  }
  throw new Error(`expected ${body} to be rejected`);
}

function upload(name: string): UploadedFile {
  return { name, mime: 'text/plain', size: 1, error: 0, tmpName: `/tmp/upload-${name}` };
}

describe('forms: splitFormName (RR fetchIndexes)', () => {
  it.each([
    ['a', ['a']],
    ['a[]', ['a', '']],
    ['a[b][c]', ['a', 'b', 'c']],
    ['a[0]', ['a', '0']],
    ['a[][b]', ['a', '', 'b']],
    ['a[b][]', ['a', 'b', '']],
    ['first name', ['firstname']],
    [' a [ b ] [ ] ', ['a', 'b', '']],
    ['[a]', ['', 'a']],
    ['a]b', ['a', 'b']],
    ['a[b', ['a', 'b']],
    ['a[[b]]', ['a', 'b']],
    ['', ['']],
    ['été[ключ]', ['été', 'ключ']],
  ])('%j → %j', (name, keys) => {
    expect(splitFormName(name)).toEqual(keys);
  });
});

describe('forms: the tree rules (urlencoded)', () => {
  it('a plain name is a scalar; the last value wins when it repeats', () => {
    expect(form('a=1')).toEqual({ a: '1' });
    expect(form('a=1&a=2&a=3')).toEqual({ a: '3' });
    expect(form('a=1&a=')).toEqual({ a: '' });
  });

  it('name[] collects every value in order, empty ones included', () => {
    expect(form('a[]=1&a[]=2&a[]=&a[]=2')).toEqual({ a: ['1', '2', '', '2'] });
  });

  it('a[b][c] nests objects', () => {
    expect(
      form('user[name]=Ann&user[address][city]=Oslo&user[address][zip]=0150&user[tags][]=x&user[tags][]=y'),
    ).toEqual({
      user: { name: 'Ann', address: { city: 'Oslo', zip: '0150' }, tags: ['x', 'y'] },
    });
  });

  it('numeric keys make JSON object keys, never a JSON array', () => {
    const tree = parseUrlencoded(Buffer.from('a[0]=x&a[1]=y&a[5]=z'));
    expect(encodeFormFields(tree).toString()).toBe('{"a":{"0":"x","1":"y","5":"z"}}');
    expect(Array.isArray(tree.a)).toBe(false);
  });

  it('spaces in names are ignored', () => {
    expect(form('first name=Ann&user [ city ]=Oslo')).toEqual({ firstname: 'Ann', user: { city: 'Oslo' } });
  });

  it(`keeps names of ${MAX_FORM_DEPTH} segments and drops deeper ones (as RR does)`, () => {
    const deepest = `a${'[x]'.repeat(MAX_FORM_DEPTH - 1)}`;
    const tooDeep = `b${'[x]'.repeat(MAX_FORM_DEPTH)}`;
    const tree = wire(parseUrlencoded(Buffer.from(`${deepest}=kept&${tooDeep}=dropped&c=1`))) as Record<
      string,
      unknown
    >;
    let node: unknown = tree.a;
    for (let i = 0; i < MAX_FORM_DEPTH - 2; i++) node = (node as Record<string, unknown>).x;
    expect(node).toEqual({ x: 'kept' });
    expect(tree.b).toBeUndefined();
    expect(tree.c).toBe('1');
    expect(addFormValue(createFormTree(), tooDeep, 'v')).toBe(false);
  });

  it('a leaf/branch conflict is a BadFormError (400), in both orders', () => {
    for (const body of ['a=1&a[b]=2', 'a[b]=2&a=1', 'a[]=1&a[b]=2', 'a[b]=1&a[]=2', 'x[y]=1&x[y][z]=2']) {
      const error = conflictOf(body);
      expect(error).toBeInstanceOf(BadFormError);
      expect(error.code).toBe('WP_FASTIFY_BAD_FORM');
      expect(error.statusCode).toBe(400);
    }
    const error = conflictOf('a[b]=1&a[b][c]=2');
    expect(error.message).toContain('"a[b][c]"');
    expect(error.message).toContain('"a[b]" already holds a value');
    expect(error.details.field).toBe('a[b][c]');
    expect(conflictOf('a[b][c]=2&a[b]=1').message).toContain('"a[b]" already holds nested fields');
  });

  it('an empty value gives way to a branch, in both orders (RR parse.go "options" case)', () => {
    const expected = { options: { '0': { id: 'x' } }, name: 'n' };
    expect(form('options=&options[0][id]=x&name=n')).toEqual(expected);
    expect(form('options[0][id]=x&options=&name=n')).toEqual(expected);
    expect(form('a[]=&a[b]=1')).toEqual({ a: { b: '1' } });
  });

  it('a[] and a under the same name: the later kind replaces the earlier one (non-empty values)', () => {
    expect(form('a[]=1&a[]=2&a=3')).toEqual({ a: '3' });
    expect(form('a=1&a[]=2&a[]=3')).toEqual({ a: ['2', '3'] });
    expect(form('a[]=1&a=')).toEqual({ a: ['1'] });
  });

  it('odd bracket placements follow RR', () => {
    expect(form('[a]=1')).toEqual({ '': { a: '1' } });
    expect(form('a]b=1')).toEqual({ a: { b: '1' } });
    expect(form('a[][x]=1')).toEqual({ a: { '': { x: '1' } } });
  });

  it('decodes UTF-8, percent escapes and + as a space', () => {
    expect(form('%C3%A9t%C3%A9=%E2%9C%93&raw=\u00e9t\u00e9+\u2713')).toEqual({ été: '✓', raw: 'été ✓' });
    expect(form('q=a+b%2Bc%20d&sum=1%2B1%3D2&amp=%26')).toEqual({ q: 'a b+c d', sum: '1+1=2', amp: '&' });
    expect(form('emoji=%F0%9F%98%80')).toEqual({ emoji: '😀' });
  });

  it('percent-encoded brackets in names are brackets (decoded before the tree rules)', () => {
    expect(form('a%5Bb%5D%5B%5D=1&a%5Bb%5D%5B%5D=2')).toEqual({ a: { b: ['1', '2'] } });
  });

  it('keeps invalid escapes literally, as PHP does (RR would answer 500)', () => {
    expect(form('d=100%&e=%zz&f=%4&g=%%41&h=50%+off')).toEqual({ d: '100%', e: '%zz', f: '%4', g: '%A', h: '50% off' });
    expect(form('%=x&a%=y')).toEqual({ '%': 'x', 'a%': 'y' });
  });

  it('invalid UTF-8 becomes U+FFFD (what Go writes into the JSON)', () => {
    expect(form('bad=%FF%FEok')).toEqual({ bad: '\ufffd\ufffdok' });
    expect(form(Buffer.from([0x78, 0x3d, 0xc3, 0x28]))).toEqual({ x: '\ufffd(' });
  });

  it('pair syntax: no "=", empty pairs, "=" in values, ";" is an ordinary character', () => {
    expect(form('a&b=&&c=1=2&')).toEqual({ a: '', b: '', c: '1=2' });
    expect(form('a=1;b=2')).toEqual({ a: '1;b=2' });
    expect(form('=x')).toEqual({ '': 'x' });
  });

  it('an empty body is {} on the wire (PROTOCOL.md: send {} for empty parsed forms)', () => {
    const tree = parseUrlencoded(Buffer.alloc(0));
    expect(encodeFormFields(tree).toString()).toBe('{}');
    expect(encodeFormFields(parseUrlencoded(Buffer.from('&&'))).toString()).toBe('{}');
  });

  it('__proto__ and constructor are ordinary keys; nothing is polluted', () => {
    const tree = parseUrlencoded(Buffer.from('__proto__[polluted]=1&constructor[prototype][x]=2&toString=3'));
    // (JSON.parse makes "__proto__" an own key; an object literal would set the prototype instead)
    expect(wire(tree)).toEqual(
      JSON.parse('{"__proto__":{"polluted":"1"},"constructor":{"prototype":{"x":"2"}},"toString":"3"}'),
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(tree)).toBeNull();
  });

  it('the tree itself compares equal to plain objects', () => {
    expect(parseUrlencoded(Buffer.from('a[b]=1&c[]=2'))).toEqual({ a: { b: '1' }, c: ['2'] });
  });
});

describe('forms: a field count limit (uploads.max_fields)', () => {
  it('parses up to the limit and throws TooManyFieldsError past it, without parsing the rest; empty pairs do not count', () => {
    expect(wire(parseUrlencoded(Buffer.from('a=1&&b=2&c=3&'), 3))).toEqual(
      wire(parseUrlencoded(Buffer.from('a=1&b=2&c=3'))),
    );
    expect(() => parseUrlencoded(Buffer.from('a=1&b=2&c=3&d=4'), 3)).toThrow(TooManyFieldsError);
    // a million fields past a limit of 10: refused at the 11th, in far less than parsing them would take
    const million = Buffer.from(Array.from({ length: 1_000_000 }, (_, i) => `f${i}=1`).join('&'));
    const error = (() => {
      try {
        parseUrlencoded(million, 10);
      } catch (caught) {
        return caught as TooManyFieldsError;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(TooManyFieldsError);
    expect(error).toMatchObject({ statusCode: 413, code: 'WP_FASTIFY_TOO_MANY_FIELDS', details: { limit: 10 } });
    expect(Object.keys(parseUrlencoded(million, null))).toHaveLength(1_000_000);
  });
});

describe('forms: the same rules for files (upload leaves)', () => {
  it('a plain name keeps the FIRST file; name[] keeps every file; nesting works', () => {
    const tree = createFormTree();
    expect(addFormValue(tree, 'avatar', upload('a1'))).toBe(true);
    expect(addFormValue(tree, 'avatar', upload('a2'))).toBe(false);
    addFormValue(tree, 'f[]', upload('f1'));
    addFormValue(tree, 'f[]', upload('f2'));
    addFormValue(tree, 'docs[contract][]', upload('d1'));
    addFormValue(tree, 'docs[id]', upload('d2'));
    expect(wire(tree)).toEqual({
      avatar: upload('a1'),
      f: [upload('f1'), upload('f2')],
      docs: { contract: [upload('d1')], id: upload('d2') },
    });
  });

  it('a file under a name that already holds nested files (and the reverse) is a conflict', () => {
    const tree = createFormTree();
    addFormValue(tree, 'f[x]', upload('1'));
    expect(() => addFormValue(tree, 'f', upload('2'))).toThrow(BadFormError);
    const other = createFormTree();
    addFormValue(other, 'f', upload('1'));
    expect(() => addFormValue(other, 'f[x]', upload('2'))).toThrow(/already holds a value/);
  });
});

describe('forms: ParsedForm', () => {
  it('only what the parsers created is a ParsedForm', () => {
    const fields = parseUrlencoded(Buffer.from('a=1'));
    const parsed = createParsedForm('urlencoded', fields, null);
    expect(isParsedForm(parsed)).toBe(true);
    expect(parsed).toEqual({ kind: 'urlencoded', fields: { a: '1' }, uploads: null });
    expect(isParsedForm({ kind: 'urlencoded', fields: { a: '1' }, uploads: null })).toBe(false);
    expect(isParsedForm(Buffer.from('a=1'))).toBe(false);
    expect(isParsedForm(null)).toBe(false);
    expect(isParsedForm(undefined)).toBe(false);
  });
});
