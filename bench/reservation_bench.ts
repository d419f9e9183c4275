/**
 * quickjs-emscripten (an Emscripten module built with an imported memory), one tenant at a
 * time through its own glue: the glue on the runtime's `new WebAssembly.Instance` with the
 * memory it makes itself (the baseline), against the glue on `engine.reserve(module)` (the
 * reservation's pooled memory and recycled instance). Two groups: the glue and instantiation
 * alone, and a whole tenant (a runtime, a context, a small script, everything disposed).
 * Writes `bench/results/reservation-<runtime>.json`.
 *
 * @module
 */

import { bench, group, run, summary } from "../.tools/node_modules/mitata/src/main.mjs";
import { readFileSync } from "node:fs";
import { RUNTIME, writeResults } from "./mitata_results.ts";
import {
  Config,
  Engine,
  type Instance,
  InstanceAllocationStrategy,
  type InstanceImports,
  Module,
} from "../mod.ts";
import {
  loadQuickJS,
  QUICKJS_WASM_PATH,
  type QuickJSWASMModule,
} from "../tests/fixtures/quickjs_glue.ts";

const bytes = readFileSync(QUICKJS_WASM_PATH);
const compiled = new WebAssembly.Module(bytes);
const pooled = new Engine(new Config().withAllocationStrategy(
  InstanceAllocationStrategy.pooling({
    instanceLimits: { count: 4 },
    moduleLimits: {
      importedMemories: 1,
      memoryPages: 32768,
      types: 1000,
      functions: 10_000,
      globals: 100,
      tableElements: 1000,
    },
  }),
));
const module = new Module(pooled, bytes);

const SCRIPT = "let s = 0; for (let i = 0; i < 100; i++) s += i; JSON.stringify({ s })";

function tenantWork(quickjs: QuickJSWASMModule): void {
  const runtime = quickjs.newRuntime();
  const context = runtime.newContext();
  const handle = context.unwrapResult(context.evalCode(SCRIPT));
  context.dump(handle);
  handle.dispose();
  context.dispose();
  runtime.dispose();
}

/** The glue on the runtime's own instance and the memory the glue makes. */
async function plainTenant(work: boolean): Promise<void> {
  const quickjs = await loadQuickJS({
    instantiateWasm(imports, receive) {
      receive(new WebAssembly.Instance(compiled, imports as WebAssembly.Imports), compiled);
      return {};
    },
  });
  if (work) tenantWork(quickjs);
}

/** The glue on a reservation: its pooled memory and recycled instance. */
async function reservedTenant(work: boolean): Promise<void> {
  const reservation = pooled.reserve(module);
  let instance: Instance | null = null;
  const quickjs = await loadQuickJS({
    wasmMemory: reservation.memory,
    instantiateWasm(imports, receive) {
      instance = reservation.instantiate(imports as InstanceImports);
      receive(instance, module);
      return {};
    },
  });
  if (work) tenantWork(quickjs);
  (instance as Instance | null)!.dispose();
}

for (const work of [false, true]) {
  summary(() => {
    group(
      work
        ? "quickjs-emscripten tenant: glue, instantiate, runtime, context, eval, dispose"
        : "quickjs-emscripten: glue and instantiate, dispose",
      () => {
        bench("glue on new WebAssembly.Instance", () => plainTenant(work)).baseline(true);
        bench("glue on engine.reserve (pooling)", () => reservedTenant(work));
      },
    );
  });
}

writeResults(`reservation-${RUNTIME}`, await run({ format: "mitata" }));
const stats = pooled.stats();
console.log(JSON.stringify({
  warmHits: stats.warmHits,
  warmMisses: stats.warmMisses,
  recycleFallbacks: stats.recycleFallbacks,
  hostMemoriesCreated: stats.hostMemoriesCreated,
}));
pooled.close();
