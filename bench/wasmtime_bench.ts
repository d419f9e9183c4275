/**
 * Wasmtime 50 as the measured peer, in the same process and run as wasmpool: instantiate and
 * dispose each module of bench/image_modules.ts (small, 64 KiB image, 5 MiB image, tiktoken)
 *
 * - in Wasmtime, per cycle `wasmtime_store_new` + `wasmtime_instance_pre_instantiate` +
 *   `wasmtime_store_delete` on an `InstancePre` made once (bench/wasmtime/): pooling with
 *   copy-on-write images (the group's baseline), pooling without them (segments copied at
 *   each instantiation), and on-demand with copy-on-write;
 * - in wasmpool, `engine.allocate(module, imports).dispose()`, as bench/instantiate_bench.ts
 *   measures it: pooling (`pooling({ instanceLimits: { count: 100 } })`, the other limits at
 *   their defaults) and on-demand.
 *
 * Wasmtime's pools hold 100 instances, memories and tables, as ours does. tiktoken's 7
 * function imports are satisfied on both sides by functions that are never called: in Wasmtime
 * by `wasmtime_linker_define_unknown_imports_as_traps`, in wasmpool by JavaScript functions
 * that throw.
 *
 * Prints mitata's table and writes `bench/results/wasmtime-<runtime>.json`. Without Wasmtime's
 * library (`script/bootstrap` installs it on Linux x86_64) only wasmpool's rows run.
 *
 * @module
 */

import { bench, group, run, summary } from "../.tools/node_modules/mitata/src/main.mjs";
import { RUNTIME, writeResults } from "./mitata_results.ts";
import { Config, Engine, InstanceAllocationStrategy, Module } from "../mod.ts";
import { benchModules, wasmtimeGroupTitle } from "./image_modules.ts";
import { openWasmtime, WasmtimeEngine, wasmtimeLibraryPath } from "./wasmtime/mod.ts";

const POOL_SIZE = 100;

const ours = {
  "wasmpool pooling": new Engine(new Config().withAllocationStrategy(
    InstanceAllocationStrategy.pooling({ instanceLimits: { count: POOL_SIZE } }),
  )),
  "wasmpool on-demand": new Engine(),
};

const lib = await openWasmtime();
if (lib === null) {
  console.error(
    `wasmtime_bench: no Wasmtime library at ${wasmtimeLibraryPath()} ` +
      "(run script/bootstrap, or set WASMTIME_LIB): measuring wasmpool alone",
  );
}
const theirs = lib === null ? {} : {
  "Wasmtime pooling + CoW": new WasmtimeEngine(lib, {
    allocation: "pooling",
    memoryInitCow: true,
    poolSize: POOL_SIZE,
  }),
  "Wasmtime pooling, no CoW": new WasmtimeEngine(lib, {
    allocation: "pooling",
    memoryInitCow: false,
    poolSize: POOL_SIZE,
  }),
  "Wasmtime on-demand + CoW": new WasmtimeEngine(lib, {
    allocation: "on-demand",
    memoryInitCow: true,
  }),
};

/** Functions for every import of `module`, none of them meant to be called. */
function functionStubs(module: Module): Record<string, Record<string, () => never>> {
  const imports: Record<string, Record<string, () => never>> = {};
  for (const i of module.imports) {
    if (i.kind !== "function") throw new Error(`${i.module}.${i.name} is not a function import`);
    (imports[i.module] ??= {})[i.name] = () => {
      throw new Error(`${i.module}.${i.name} is not callable in a bench`);
    };
  }
  return imports;
}

for (const module of benchModules()) {
  // Compiled and linked before timing; a module Wasmtime or wasmpool rejects fails here.
  const wasmtimeCycles = Object.entries(theirs).map(([name, engine]) =>
    [name, engine.instantiatePre(module.bytes).cycle] as const
  );
  const wasmpoolCycles = Object.entries(ours).map(([name, engine]) => {
    const compiled = new Module(engine, module.bytes);
    const imports = functionStubs(compiled);
    return [name, () => engine.allocate(compiled, imports).dispose()] as const;
  });
  summary(() => {
    group(wasmtimeGroupTitle(module), () => {
      for (const [name, cycle] of wasmtimeCycles) {
        bench(name, cycle).baseline(name === "Wasmtime pooling + CoW");
      }
      for (const [name, cycle] of wasmpoolCycles) bench(name, cycle);
    });
  });
}

writeResults(`wasmtime-${RUNTIME}`, await run({ format: "mitata" }));
for (const engine of Object.values(theirs)) engine.close();
for (const engine of Object.values(ours)) engine.close();
