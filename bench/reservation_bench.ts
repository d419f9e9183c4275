/**
 * quickjs-emscripten (an Emscripten module built with an imported memory), one tenant at a
 * time through its own glue: the glue on the runtime's `new WebAssembly.Instance` with the
 * memory it makes itself (the baseline), against the glue on `engine.reserve(module)` (the
 * reservation's pooled memory and recycled instance). Two groups: the glue and instantiation
 * alone, and a whole tenant (a runtime, a context, a small script, everything disposed). And
 * without glue, a small module importing its memory (1 page, 1 KiB of data): a reservation's
 * cycle against `new WebAssembly.Memory` + `new WebAssembly.Instance`, and against the same
 * module with a defined memory on `engine.instantiate` (a recycled instance's cycle).
 * Writes `bench/results/reservation-<runtime>.json`.
 *
 * @module
 */

import { bench, group, run, summary } from "../.tools/node_modules/mitata/src/main.mjs";
import { readFileSync } from "node:fs";
import { RUNTIME, writeResults } from "./mitata_results.ts";
import { Module } from "../mod.ts";
import { buildModule } from "../tests/fixtures/wasm_builder.ts";
import {
  evalInNewRuntime,
  loadQuickJS,
  loadQuickJSOn,
  QUICKJS_WASM_PATH,
  quickJSPoolingEngine,
} from "../tests/fixtures/quickjs_glue.ts";

const bytes = readFileSync(QUICKJS_WASM_PATH);
const compiled = new WebAssembly.Module(bytes);
const pooled = quickJSPoolingEngine();
const module = new Module(pooled, bytes);

const SCRIPT = "let s = 0; for (let i = 0; i < 100; i++) s += i; JSON.stringify({ s })";

/** The glue on the runtime's own instance and the memory the glue makes. */
async function plainTenant(work: boolean): Promise<void> {
  const quickjs = await loadQuickJS({
    instantiateWasm(imports, receive) {
      receive(new WebAssembly.Instance(compiled, imports as WebAssembly.Imports), compiled);
      return {};
    },
  });
  if (work) evalInNewRuntime(quickjs, SCRIPT);
}

/** The glue on a reservation: its pooled memory and recycled instance. */
async function reservedTenant(work: boolean): Promise<void> {
  const { quickjs, instance } = await loadQuickJSOn(pooled.reserve(module), module);
  if (work) evalInNewRuntime(quickjs, SCRIPT);
  instance.dispose();
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

function smallModule(imported: boolean): Uint8Array<ArrayBuffer> {
  const memory = { min: 1, max: 2, shared: false };
  return buildModule({
    types: [{ params: ["i32"], results: ["i32"] }],
    imports: imported
      ? [{ module: "env", name: "memory", desc: { kind: "memory", type: memory } }]
      : [],
    memories: imported ? [] : [memory],
    functions: [0],
    bodies: [{ code: [0x20, 0, 0x2d, 0, 0] }],
    exports: [{ name: "load", kind: "function", index: 0 }],
    data: [{
      mode: "active",
      offset: { kind: "i32.const", value: 1024 },
      data: new Uint8Array(1024).fill(7),
    }],
  });
}
const importing = smallModule(true);
const importingCompiled = new WebAssembly.Module(importing);
const importingModule = new Module(pooled, importing);
const definingModule = new Module(pooled, smallModule(false));
type Load = (at: number) => number;
summary(() => {
  group("small module importing its memory: instantiate, call, dispose", () => {
    bench("new WebAssembly.Memory + new WebAssembly.Instance", () => {
      const memory = new WebAssembly.Memory({ initial: 1, maximum: 2 });
      const instance = new WebAssembly.Instance(importingCompiled, { env: { memory } });
      (instance.exports.load as Load)(1024);
    }).baseline(true);
    bench("engine.reserve + reservation.instantiate", () => {
      const reservation = pooled.reserve(importingModule);
      const instance = reservation.instantiate({ env: { memory: reservation.memory } });
      (instance.exports.load as Load)(1024);
      instance.dispose();
    });
    bench("engine.instantiate, the same module with a defined memory", () => {
      const instance = pooled.instantiate(definingModule);
      (instance.exports.load as Load)(1024);
      instance.dispose();
    });
  });
});

writeResults(`reservation-${RUNTIME}`, await run({ format: "mitata" }));
const stats = pooled.stats();
console.log(JSON.stringify({
  warmHits: stats.warmHits,
  warmMisses: stats.warmMisses,
  recycleFallbacks: stats.recycleFallbacks,
  hostMemoriesCreated: stats.hostMemoriesCreated,
}));
pooled.close();
