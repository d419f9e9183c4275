/**
 * A function pointer called through an exported table, as Emscripten's glue calls one
 * (`dynCall`: `getWasmTableEntry(i)(args)`) and wasm-bindgen's calls a closure
 * (`__wbindgen_export_N.get(i)(args)`), in one run per runtime: through the raw
 * `WebAssembly.Table` of the runtime's own instance (the baseline) and through the guarded table
 * of a recycled instance's tenant, whose entries are the tenant's wrappers (src/run/func_refs.ts);
 * each with the glue's cache (Emscripten's `wasmTableMirror`: a JS array filled on first use) and
 * without (`table.get(i)` on every call). The table holds 8 functions `(i32) -> i32`, called in
 * turn.
 *
 * Prints mitata's table and writes `bench/results/table-call-<runtime>.json`.
 *
 * @module
 */

import {
  bench,
  do_not_optimize,
  group,
  run,
  summary,
} from "../.tools/node_modules/mitata/src/main.mjs";
import { RUNTIME, writeResults } from "./mitata_results.ts";
import { Config, Engine, type GuardedTable, InstanceAllocationStrategy, Module } from "../mod.ts";
import { buildModule } from "../tests/fixtures/wasm_builder.ts";

type Entry = (x: number) => number;

/** How many functions the table holds; calls go through them in turn. */
const ENTRIES = 8;

/** Functions `f_k(x) = x + k`, in a table exported as `table`. */
function tableModule(): Uint8Array<ArrayBuffer> {
  return buildModule({
    types: [{ params: ["i32"], results: ["i32"] }],
    functions: new Array(ENTRIES).fill(0),
    tables: [{ element: "funcref", min: ENTRIES, max: ENTRIES }],
    exports: [{ name: "table", kind: "table", index: 0 }],
    elements: [{
      mode: "active",
      offset: { kind: "i32.const", value: 0 },
      elements: Array.from({ length: ENTRIES }, (_, k) => k),
    }],
    // local.get 0; i32.const k; i32.add
    bodies: Array.from({ length: ENTRIES }, (_, k) => ({ code: [0x20, 0x00, 0x41, k, 0x6a] })),
  });
}

/** What Emscripten's glue does: `getWasmTableEntry`, over its own mirror array. */
function emscriptenEntries(table: { get(i: number): unknown }): (i: number) => Entry {
  const mirror: (Entry | undefined)[] = [];
  return (i) => {
    let f = mirror[i];
    if (f === undefined) mirror[i] = f = table.get(i) as Entry;
    return f;
  };
}

const engine = new Engine(new Config().withAllocationStrategy(
  InstanceAllocationStrategy.pooling({ instanceLimits: { count: 4 } }),
));
const bytes = tableModule();
const module = new Module(engine, bytes);
if (module.notRecyclable !== null) throw new Error(`not recyclable: ${module.notRecyclable}`);
// A warm instance's second tenant: what the glue of every later tenant gets.
engine.instantiate(module).dispose();
const tenant = engine.instantiate(module);
if (engine.stats().warmHits !== 1) throw new Error("the tenant did not get a recycled instance");
const guarded = tenant.exports.table as GuardedTable;
const raw = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports
  .table as WebAssembly.Table;

const rawCached = emscriptenEntries(raw);
const guardedCached = emscriptenEntries(guarded);
let k = 0;

summary(() => {
  group("function pointer call, table.get(i)(x) each time", () => {
    bench("runtime's instance, WebAssembly.Table", () => {
      k = (k + 1) & (ENTRIES - 1);
      do_not_optimize((raw.get(k) as Entry)(k));
    }).baseline(true);
    bench("recycled tenant, guarded table", () => {
      k = (k + 1) & (ENTRIES - 1);
      do_not_optimize((guarded.get(k) as Entry)(k));
    });
  });
});

summary(() => {
  group("function pointer call, through the glue's cache (getWasmTableEntry)", () => {
    bench("runtime's instance, WebAssembly.Table", () => {
      k = (k + 1) & (ENTRIES - 1);
      do_not_optimize(rawCached(k)(k));
    }).baseline(true);
    bench("recycled tenant, guarded table", () => {
      k = (k + 1) & (ENTRIES - 1);
      do_not_optimize(guardedCached(k)(k));
    });
  });
});

writeResults(`table-call-${RUNTIME}`, await run({ format: "mitata" }));
tenant.dispose();
engine.close();
