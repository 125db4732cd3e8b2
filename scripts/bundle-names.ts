import ts from 'typescript';

/**
 * esbuild's `keepNames` (scripts/bundle.ts) keeps every function's and class's `name` through its renaming by
 * wrapping each named function in a call of its `__name` helper, an `Object.defineProperty` of the name. Where the
 * function is made once (a module's top level) that costs nothing that matters; where it is made per call (an arrow
 * bound to a `const` in a function, a function declared in one) it is paid every time the closure is made: about
 * 0.4 µs each here (measured), even when the name set is the one the function already has, and reading `name` first
 * to compare costs as much. A variant's 304 made four such closures (9 % of its CPU in a profile), Express's router
 * a few per request (its `next`, declared in its `handle`).
 *
 * Most of those calls give the function the name the language already gives it: a function declaration's own name,
 * an anonymous function or arrow bound to a variable, a property or a class field of that same name (the language's
 * named evaluation), a function expression's own name. This removes exactly those calls, and leaves every call that
 * changes a name (a binding esbuild renamed, `Subscriber2` named `Subscriber`; a member assignment; a class's
 * `__name(this, …)`), so every function keeps the `name` keepNames gives it: test/integration/bundle-names.int-spec.ts
 * bundles modules with esbuild as the build does and compares every function's name with the calls and without.
 * Lines stay where they were (a call's head and tail are deleted within their lines), so the source map still points
 * at the right line; columns after a deletion on its line are off by its length.
 *
 * A parser, not a pattern: a call's argument is any expression, and only a syntax tree says where it ends and what
 * binds it. TypeScript's (already a build dependency) reads the 8 MB bundle in about 2 s.
 */
export function dropNoOpNames(code: string): { code: string; dropped: number } {
  const file = ts.createSourceFile('bundle.js', code, ts.ScriptTarget.ES2022, true, ts.ScriptKind.JS);
  /**
   * Spans of text to delete. A kept call loses its head (`__name(`) and its tail (`, "name")`), not its argument, so
   * no span holds another: the calls inside a kept function are deleted from its text as well.
   */
  const spans: [number, number][] = [];
  let dropped = 0;

  const visit = (node: ts.Node): void => {
    const statements = statementsOf(node);
    if (statements) {
      const declared = new Set<string>();
      for (const s of statements) {
        if (ts.isFunctionDeclaration(s) && s.name) {
          declared.add(s.name.text);
        }
      }
      for (const s of statements) {
        const call = ts.isExpressionStatement(s) ? nameCall(s.expression) : undefined;
        // `__name(f, "f");` for a `function f` declared in this same list: its name is "f" already.
        if (
          call &&
          ts.isIdentifier(call.target) &&
          call.target.text === call.name &&
          declared.has(call.name)
        ) {
          spans.push([s.getStart(file), s.end]);
          dropped++;
        }
      }
    }
    const call = nameCall(node);
    if (call && namesItself(call)) {
      spans.push([node.getStart(file), call.target.getStart(file)], [call.target.end, node.end]);
      dropped++;
    }
    ts.forEachChild(node, visit);
  };
  visit(file);

  spans.sort((a, b) => a[0] - b[0]);
  let out = '';
  let at = 0;
  for (const [start, end] of spans) {
    if (start < at) {
      throw new Error(`bundle names: overlapping edits at ${start}`);
    }
    if (code.slice(start, end).includes('\n')) {
      throw new Error(
        `bundle names: a deletion over a line's end at ${start} would move the source map's lines`,
      );
    }
    out += code.slice(at, start);
    at = end;
  }
  return { code: out + code.slice(at), dropped };
}

function statementsOf(node: ts.Node): ts.NodeArray<ts.Statement> | undefined {
  if (ts.isSourceFile(node) || ts.isBlock(node) || ts.isModuleBlock(node) || ts.isCaseClause(node)) {
    return node.statements;
  }
  if (ts.isDefaultClause(node)) {
    return node.statements;
  }
  return undefined;
}

interface NameCall {
  node: ts.CallExpression;
  target: ts.Expression;
  name: string;
}

/** `__name(target, "name")`, as esbuild writes it. */
function nameCall(node: ts.Node): NameCall | undefined {
  if (
    !ts.isCallExpression(node) ||
    !ts.isIdentifier(node.expression) ||
    node.expression.text !== '__name' ||
    node.arguments.length !== 2 ||
    !ts.isStringLiteral(node.arguments[1])
  ) {
    return undefined;
  }
  return { node, target: node.arguments[0], name: node.arguments[1].text };
}

/**
 * Whether the function `call` names would have `call.name` as its name without the call, in the call's place: a
 * function expression named so itself, or an anonymous function or arrow that the language names after what it is
 * bound to there (a variable, a property, a class field, a plain variable assigned). Only places where an arrow or a
 * function expression can stand as it is, without the call around it.
 */
function namesItself(call: NameCall): boolean {
  const { node, target, name } = call;
  if (!ts.isArrowFunction(target) && !ts.isFunctionExpression(target)) {
    return false;
  }
  const parent = node.parent;
  // `__proto__: f` in an object literal sets the prototype, and names nothing.
  const bound = (binding: ts.Node): boolean =>
    target.name === undefined
      ? ts.isIdentifier(binding) && binding.text === name && name !== '__proto__'
      : target.name.text === name;
  if (ts.isVariableDeclaration(parent) && parent.initializer === node) {
    return bound(parent.name);
  }
  if ((ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) && parent.initializer === node) {
    return bound(parent.name);
  }
  if (
    ts.isBinaryExpression(parent) &&
    parent.operatorToken.kind === ts.SyntaxKind.EqualsToken &&
    parent.right === node
  ) {
    return bound(parent.left);
  }
  return false;
}
