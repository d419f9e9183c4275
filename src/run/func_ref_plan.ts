/**
 * Where function references cross a module's boundary, read from the parsed module once, when
 * its run plan is made (plan.ts): the part of func_refs.ts that knows the module and no tenant,
 * so that the plan does not import the tenants' code. func_refs.ts binds what this finds.
 *
 * @module
 */

import type { FuncType, ParsedModule } from "../module/types.ts";

/** Where funcrefs are in a signature: the positions of its funcref parameters and results. */
export interface RefSignature {
  /** Positions of funcref parameters. */
  readonly params: readonly number[];
  /** Positions of funcref results, and how many results there are. */
  readonly results: readonly number[];
  /** The number of results (a multi-value result is an array). */
  readonly resultCount: number;
}

/**
 * Where function references cross a module's boundary: per export (in order), a signature for
 * a function with funcrefs in it, `true` for a funcref table or global, else null; per function
 * import (in order), a signature with funcrefs in it, else null.
 */
export interface FuncRefPlan {
  /** Per export, in order. */
  readonly exports: readonly (RefSignature | true | null)[];
  /** Per function import, in order. */
  readonly imports: readonly (RefSignature | null)[];
}

function refSignature(type: FuncType): RefSignature | null {
  const positions = (types: readonly string[]): number[] =>
    types.flatMap((t, i) => t === "funcref" ? [i] : []);
  const params = positions(type.params);
  const results = positions(type.results);
  if (params.length === 0 && results.length === 0) return null;
  return { params, results, resultCount: type.results.length };
}

/** Where function references cross `parsed`'s boundary; null when nowhere. */
export function funcRefPlan(parsed: ParsedModule): FuncRefPlan | null {
  const importedTypes = parsed.imports.flatMap((i) =>
    i.desc.kind === "function" ? [i.desc.type] : []
  );
  const typeOf = (f: number): FuncType =>
    parsed.types[
      f < importedTypes.length ? importedTypes[f] : parsed.functions[f - importedTypes.length]
    ];
  const tableTypes = [
    ...parsed.imports.flatMap((i) => i.desc.kind === "table" ? [i.desc.type.element] : []),
    ...parsed.tables.map((t) => t.element),
  ];
  const globalTypes = [
    ...parsed.imports.flatMap((i) => i.desc.kind === "global" ? [i.desc.type.type] : []),
    ...parsed.globals.map((g) => g.type.type),
  ];
  const exports = parsed.exports.map((e): RefSignature | true | null =>
    e.kind === "function"
      ? refSignature(typeOf(e.index))
      : e.kind === "table"
      ? tableTypes[e.index] === "funcref" || null
      : e.kind === "global"
      ? globalTypes[e.index] === "funcref" || null
      : null
  );
  const imports = importedTypes.map((t) => refSignature(parsed.types[t]));
  if (exports.every((e) => e === null) && imports.every((i) => i === null)) return null;
  return { exports, imports };
}
