/**
 * v128 values cannot cross the JS API (a call with a v128 parameter or result throws a
 * `TypeError`), so the harness calls such functions, and reads such globals, through a small
 * adapter module it builds: the adapter imports the backend's export, passes each v128 as two
 * i64 halves, and returns each v128 result as two i64 halves.
 *
 * The adapter runs on the runtime's own `WebAssembly`; it only links to the backend's
 * export. A backend whose exported functions are JS wrappers cannot be called with a v128
 * this way (a JS function imported with a v128 signature throws when called), which is a
 * real difference from the runtime's own instances and shows up as one.
 *
 * @module
 */

import { assemble, funcType, name, u32, valueType, vec } from "./binary.ts";
import { resultList, V128 } from "./values.ts";

const SIMD = 0xfd;
const I64X2_SPLAT = 0x12;
const I64X2_EXTRACT_LANE = 0x1d;
const I64X2_REPLACE_LANE = 0x1e;
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const GLOBAL_GET = 0x23;
const CALL = 0x10;
const END = 0x0b;

/** v128 becomes two i64: the adapter's outward signature. */
function split(types: readonly string[]): string[] {
  return types.flatMap((t) => (t === "v128" ? ["i64", "i64"] : [t]));
}

function body(locals: readonly string[], code: readonly number[]): number[] {
  const bytes = [...vec(locals.map((t) => [1, valueType(t)])), ...code, END];
  return [...u32(bytes.length), ...bytes];
}

function invokeAdapter(
  params: readonly string[],
  results: readonly string[],
): Uint8Array<ArrayBuffer> {
  const code: number[] = [];
  let index = 0;
  for (const p of params) {
    if (p === "v128") {
      code.push(LOCAL_GET, ...u32(index), SIMD, I64X2_SPLAT);
      code.push(LOCAL_GET, ...u32(index + 1), SIMD, I64X2_REPLACE_LANE, 1);
      index += 2;
    } else {
      code.push(LOCAL_GET, ...u32(index));
      index += 1;
    }
  }
  code.push(CALL, 0);
  const locals = results.includes("v128") ? results : [];
  if (locals.length > 0) {
    const base = index;
    for (let j = results.length - 1; j >= 0; j--) code.push(LOCAL_SET, ...u32(base + j));
    results.forEach((r, j) => {
      if (r === "v128") {
        code.push(LOCAL_GET, ...u32(base + j), SIMD, I64X2_EXTRACT_LANE, 0);
        code.push(LOCAL_GET, ...u32(base + j), SIMD, I64X2_EXTRACT_LANE, 1);
      } else {
        code.push(LOCAL_GET, ...u32(base + j));
      }
    });
  }
  return assemble([
    { id: 1, payload: vec([funcType(params, results), funcType(split(params), split(results))]) },
    { id: 2, payload: vec([[...name("m"), ...name("f"), 0x00, 0]]) },
    { id: 3, payload: vec([u32(1)]) },
    { id: 7, payload: vec([[...name("call"), 0x00, 1]]) },
    { id: 10, payload: vec([body(locals, code)]) },
  ]);
}

function globalAdapter(mutable: boolean): Uint8Array<ArrayBuffer> {
  const code = [
    GLOBAL_GET,
    0,
    SIMD,
    I64X2_EXTRACT_LANE,
    0,
    GLOBAL_GET,
    0,
    SIMD,
    I64X2_EXTRACT_LANE,
    1,
  ];
  return assemble([
    { id: 1, payload: vec([funcType([], ["i64", "i64"])]) },
    { id: 2, payload: vec([[...name("m"), ...name("g"), 0x03, 0x7b, mutable ? 1 : 0]]) },
    { id: 3, payload: vec([u32(0)]) },
    { id: 7, payload: vec([[...name("get"), 0x00, 0]]) },
    { id: 10, payload: vec([body([], code)]) },
  ]);
}

const adapters = new Map<string, WebAssembly.Module>();

function adapter(key: string, build: () => Uint8Array<ArrayBuffer>): WebAssembly.Module {
  let module = adapters.get(key);
  if (module === undefined) {
    module = new WebAssembly.Module(build());
    adapters.set(key, module);
  }
  return module;
}

/**
 * Calls an exported function whose signature has v128 in it, through an adapter.
 *
 * @param fn The exported function.
 * @param params Its parameter types.
 * @param results Its result types.
 * @param args The arguments; each v128 one a {@linkcode V128}.
 * @returns The results, each v128 one a {@linkcode V128}.
 */
export function callThroughAdapter(
  fn: unknown,
  params: readonly string[],
  results: readonly string[],
  args: readonly unknown[],
): unknown[] {
  const module = adapter(
    `${params.join(",")}->${results.join(",")}`,
    () => invokeAdapter(params, results),
  );
  const { call } = new WebAssembly.Instance(module, { m: { f: fn } } as WebAssembly.Imports)
    .exports as {
      call: (...a: unknown[]) => unknown;
    };
  const flat = args.flatMap((a) => (a instanceof V128 ? a.halves() : [a]));
  const raw = resultList(call(...flat), split(results).length);
  const out: unknown[] = [];
  let i = 0;
  for (const r of results) {
    if (r === "v128") {
      out.push(V128.fromHalves(raw[i] as bigint, raw[i + 1] as bigint));
      i += 2;
    } else {
      out.push(raw[i++]);
    }
  }
  return out;
}

/**
 * Reads an exported v128 global through an adapter (immutable first, then mutable).
 *
 * @param global The exported global.
 */
export function readV128Global(global: unknown): V128 {
  let error: unknown;
  for (const mutable of [false, true]) {
    try {
      const module = adapter(`global ${mutable}`, () => globalAdapter(mutable));
      const { get } = new WebAssembly.Instance(module, { m: { g: global } } as WebAssembly.Imports)
        .exports as {
          get: () => [bigint, bigint];
        };
      const [low, high] = get();
      return V128.fromHalves(low, high);
    } catch (e) {
      if (!(e instanceof WebAssembly.LinkError)) throw e;
      error = e;
    }
  }
  throw error;
}
