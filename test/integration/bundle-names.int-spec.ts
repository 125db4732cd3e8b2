import { build } from 'esbuild';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { dropNoOpNames } from '../../scripts/bundle-names';

/**
 * Modules in which esbuild's keepNames has every kind of call to make: functions declared at the top and inside
 * functions, arrows and function expressions bound to variables, properties, class fields and plain variables, made
 * once and per call; and names it must restore because it renamed the binding (two modules declaring the same
 * names, hoisted into one scope), or because the language would give none (an arrow passed as an argument, a member
 * assigned). `names()` returns every function each module makes, by where it was made.
 */
const MODULES: Record<string, string> = {
  'a.js': `
    export function helper() { return 'a'; }
    export const shared = () => 'a';
    export class Thing { field = () => 1; static make = function () { return 2; }; }
    export function perCall(n) {
      const allowed = () => n + 1;
      function inner() { return n; }
      const expr = function () { return n; };
      const ownName = function named() { return n; };
      let assigned;
      assigned = () => n;
      const holder = {};
      holder.member = () => n;
      const object = { prop: () => n, method() { return n; }, 'quoted': () => n, __proto__: null };
      const list = [() => n].map((f) => f);
      return { allowed, inner, expr, ownName, assigned, member: holder.member, prop: object.prop, method: object.method,
               quoted: object.quoted, listed: list[0] };
    }`,
  'b.js': `
    export function helper() { return 'b'; }
    export const shared = () => 'b';
    export class Thing { field = () => 3; }
    export const arrow = () => 4;
    export function perCall(n) {
      const allowed = () => n;
      return { allowed };
    }`,
  'entry.js': `
    import * as a from './a.js';
    import * as b from './b.js';
    export function names() {
      const out = {};
      const add = (prefix, fns) => { for (const [k, f] of Object.entries(fns)) out[prefix + k] = f.name; };
      add('a.', { helper: a.helper, shared: a.shared, Thing: a.Thing, field: new a.Thing().field, make: a.Thing.make });
      add('a.perCall.', a.perCall(1));
      add('a.perCall2.', a.perCall(2));
      add('b.', { helper: b.helper, shared: b.shared, Thing: b.Thing, field: new b.Thing().field, arrow: b.arrow });
      add('b.perCall.', b.perCall(1));
      return out;
    }`,
};

async function bundle(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'fxf-bundle-names-'));
  try {
    for (const [name, text] of Object.entries(MODULES)) {
      writeFileSync(join(dir, name), text);
    }
    const result = await build({
      entryPoints: [join(dir, 'entry.js')],
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      keepNames: true,
      write: false,
      logLevel: 'silent',
    });
    return result.outputFiles[0].text;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function namesOf(code: string): Record<string, string> {
  const module = { exports: {} as { names: () => Record<string, string> } };
  runInNewContext(code, { module, exports: module.exports, require });
  return module.exports.names();
}

describe('dropNoOpNames: keepNames without a defineProperty where the name is already right', () => {
  it('should give every function of a keepNames bundle the same name with fewer __name calls', async () => {
    const code = await bundle();
    const kept = dropNoOpNames(code);

    const before = namesOf(code);
    const after = namesOf(kept.code);
    expect(after).toEqual(before);
    // What keepNames is for: the names esbuild renamed (b's helper, shared and Thing are helper2, shared2 and Thing2
    // in the bundle).
    expect(code).toMatch(/function helper2\(/);
    expect(after['b.helper']).toBe('helper');
    expect(after['b.Thing']).toBe('Thing');
    expect(code).toMatch(/shared2 = /);
    expect(after['b.shared']).toBe('shared');
    // And what the language names by itself, so the calls went.
    expect(after['a.perCall.allowed']).toBe('allowed');
    expect(after['a.perCall.inner']).toBe('inner');
    expect(after['a.perCall.ownName']).toBe('named');
    expect(after['a.perCall.prop']).toBe('prop');

    const calls = (text: string): number => text.split('__name(').length - 1;
    expect(kept.dropped).toBeGreaterThan(8);
    expect(calls(kept.code)).toBe(calls(code) - kept.dropped);
    // Every line where it was, for the source map.
    expect(kept.code.split('\n').length).toBe(code.split('\n').length);
    // The per-call closures made in perCall carry no call any more; helper2's and Thing2's renaming ones stay.
    expect(kept.code).not.toMatch(/__name\(\(\) => n \+ 1, "allowed"\)/);
    expect(kept.code).not.toMatch(/__name\(inner, "inner"\)/);
    expect(kept.code).toMatch(/__name\(helper2, "helper"\)/);
  });

  it('should leave a call that gives a name the language would not', () => {
    const cases = [
      // A renamed binding, a member, an argument, a name other than the binding's, a computed key, __proto__.
      'var f2 = __name(() => 1, "f");',
      'o.m = __name(() => 1, "m");',
      'g(__name(() => 1, "h"));',
      'var x = __name(function y() {}, "x");',
      'var o = { ["k"]: __name(() => 1, "k") };',
      'var p = { __proto__: __name(function () {}, "__proto__") };',
      // A statement for a function not declared in the same list.
      'function outer() {} { __name(outer, "outer"); }',
    ];
    for (const text of cases) {
      expect(dropNoOpNames(text)).toEqual({ code: text, dropped: 0 });
    }
  });

  it('should drop the calls that only repeat a name, leaving the code around them as it was', () => {
    const text =
      'function f() {\n  __name(g, "g");\n  function g() {}\n  const a = /* @__PURE__ */ __name(() => {\n' +
      '    const b = /* @__PURE__ */ __name(() => 2, "b");\n    return b;\n  }, "a");\n  return a;\n}';
    const { code, dropped } = dropNoOpNames(text);
    expect(dropped).toBe(3);
    expect(code).toBe(
      'function f() {\n  \n  function g() {}\n  const a = /* @__PURE__ */ () => {\n' +
        '    const b = /* @__PURE__ */ () => 2;\n    return b;\n  };\n  return a;\n}',
    );
  });
});
