/**
 * Wrapper code made for each runtime function it wraps: the JavaScript that stands between a
 * caller and a wasm export (a recycled instance's tenant, calls with interruption or fuel) is
 * compiled once per wrapped function with `new Function`, and every wrapper of that function is
 * a closure of that code.
 *
 * Why: an engine profiles a call site per piece of code, not per closure. One wrapper source
 * shared by every function of every instance makes its call of the wasm function polymorphic,
 * then megamorphic, once calls reach it for more than a handful of functions (measured with
 * bench/probes/call_probe.ts: with 16 warm instances of one module, a tenant's call of a
 * trivial export went from 4 to 20-40 ns in JavaScriptCore, where the runtime's own call costs
 * 2 ns). Code of its own per wrapped function keeps each site monomorphic, as a plain
 * instance's caller is. A wrapper names each parameter (no rest parameter, no spread: they cost
 * as much as the rest of the wrapper in JavaScriptCore) up to {@linkcode MAX_NAMED_PARAMS}.
 *
 * Only wasmpool's own fixed text is compiled, with the runtime's functions passed in as
 * values: nothing a user or a module supplies becomes source. Compiling costs about 30 µs a
 * function (both runtimes, shared machine): tenant_function.ts spends it on a function of a
 * warm instance once a wrapper of it was called, for the next tenants (until then its wrappers
 * share code with every function of their arity), and caches it with the function.
 *
 * @module
 */

type Fn = (...args: unknown[]) => unknown;

// Sources compiled so far: each one's number makes its text unique.
let compiled = 0;

/** The most parameters a wrapper names; a function of more takes a rest parameter. */
export const MAX_NAMED_PARAMS = 16;

/** The parameter list of a wrapper of a function of `arity` parameters, and its call's. */
export function parameters(arity: number): { params: string; args: string } {
  if (!Number.isInteger(arity) || arity < 0) {
    throw new Error(`wasmpool: a function's arity must be a count, got ${arity}`);
  }
  if (arity > MAX_NAMED_PARAMS) return { params: "...args", args: "...args" };
  const names = Array.from({ length: arity }, (_, i) => `a${i}`).join(", ");
  return { params: names, args: names };
}

/**
 * Compiles `source`, the body of a function of parameters `names`, and calls it with
 * `values`: the values `source` closes over. `source` is wasmpool's own text, never input.
 */
export function generate<T>(
  names: readonly string[],
  values: readonly unknown[],
  source: string,
): T {
  if (names.length !== values.length) {
    throw new Error(`wasmpool: ${names.length} names for ${values.length} values`);
  }
  // A source text of its own: engines cache what `new Function` compiles by its text, and
  // code compiled from the same text shares its call sites' profiles (V8's does).
  const make = new Function(...names, `"use strict"; // ${++compiled}\n${source}`) as Fn;
  return make(...values) as T;
}

/**
 * The value `cache` holds for `raw`, made by `make` on first use: code compiled for one
 * wrapped function lives as long as that function.
 */
export function cached<T>(cache: WeakMap<object, T>, raw: object, make: () => T): T {
  let value = cache.get(raw);
  if (value === undefined) {
    value = make();
    cache.set(raw, value);
  }
  return value;
}

/** The function a wrapper's factory makes closures of. */
export type WrapperFactory<A extends unknown[]> = (...context: A) => Fn;
