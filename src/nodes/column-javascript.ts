/**
 * The JavaScript of a db-sink column. Now it is a function body of `record`, as everywhere
 * else (the core function node's convention: `return record.since / 1000;`). Flows saved before
 * hold an expression (`record.since / 1000`) and no `columnJs` property; the runtime still reads
 * those as expressions, and the editor turns them into bodies when the node is edited
 * (`expressionToBody` in resources/dd-editor.js, mirrored here). The table's fingerprint sees the
 * expression in both forms, so the migration rebuilds no table.
 */

/** How a db-sink stores its columns' JavaScript: `columnJs: 'body'` now, nothing in flows saved by 0.1.x. */
export function columnsAreBodies(columnJs: unknown): boolean {
  return columnJs === 'body';
}

/**
 * The function body equivalent to a column expression: `return <e>;` for a single line without
 * comments or surrounding spaces, else `return (<e>\n);` (a line break cannot end the return early).
 *
 * @example
 *   expressionToBody('record.since / 1000') // 'return record.since / 1000;'
 *   expressionToBody('a // b') // 'return (a // b\n);'
 */
export function expressionToBody(expression: string): string {
  if (expression === expression.trim() && !/\n|\/\/|\/\*/.test(expression)) return `return ${expression};`;
  return `return (${expression}\n);`;
}

/**
 * The expression a body equivalent to it came from (the inverse of `expressionToBody`), or null
 * for any other body.
 *
 * @example
 *   bodyToExpression('return record.since / 1000;') // 'record.since / 1000'
 *   bodyToExpression('const x = 1;\nreturn x;') // null
 */
export function bodyToExpression(body: string): string | null {
  const multiline = /^return \(([\s\S]*)\n\);$/.exec(body);
  if (multiline) return multiline[1]!;
  const single = /^return ([^\n]*);$/.exec(body);
  if (single && single[1] === single[1]!.trim() && !/\/\/|\/\*/.test(single[1]!)) return single[1]!;
  return null;
}

/** What a JavaScript column contributes to the fingerprint: the expression where there is one. */
export function fingerprintSource(body: string): { source: 'js' | 'js-body'; value: string } {
  const expression = bodyToExpression(body);
  return expression === null ? { source: 'js-body', value: body } : { source: 'js', value: expression };
}
