/**
 * Instantiate+dispose of a small module (1 page, a 1 KiB data segment, a 10-entry table):
 * pooling, on-demand, and the runtime's own WebAssembly as the baseline, in one run.
 * Prints mitata's table and writes `bench/results/<runtime>.json`.
 *
 * @module
 */

import { mkdirSync, writeFileSync } from "node:fs";
import { bench, group, run, summary } from "../.tools/node_modules/mitata/src/main.mjs";
import { Config, Engine, InstanceAllocationStrategy, Module } from "../mod.ts";
import { buildModule } from "../tests/fixtures/wasm_builder.ts";

const runtime = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" ? "bun" : "deno";

const bytes = buildModule({
  types: [{ params: [], results: [] }],
  functions: [0],
  memories: [{ min: 1, max: 1, shared: false }],
  tables: [{ element: "funcref", min: 10, max: 10 }],
  data: [{
    mode: "active",
    offset: { kind: "i32.const", value: 0 },
    data: new Uint8Array(1024).fill(7),
  }],
  elements: [{ mode: "active", offset: { kind: "i32.const", value: 0 }, elements: [0] }],
});

const pooling = new Engine(new Config().withAllocationStrategy(
  InstanceAllocationStrategy.pooling({ instanceLimits: { count: 100 } }),
));
const onDemand = new Engine();
const pooledModule = new Module(pooling, bytes);
const onDemandModule = new Module(onDemand, bytes);
const wasmModule = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);

summary(() => {
  group("instantiate+dispose, small module", () => {
    bench("WebAssembly.Instance", () => new WebAssembly.Instance(wasmModule)).baseline(true);
    bench("wasmpool pooling", () => pooling.instantiate(pooledModule).dispose());
    bench("wasmpool on-demand", () => onDemand.instantiate(onDemandModule).dispose());
    bench("WebAssembly.Memory 1 page", () => new WebAssembly.Memory({ initial: 1 }));
  });
});

const result = await run({ format: "mitata" });
const rows = result.benchmarks.flatMap((b: { alias: string; runs: { stats?: unknown }[] }) =>
  b.runs.map((r) => ({ name: b.alias, stats: r.stats }))
);
mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
const out = new URL(`./results/${runtime}.json`, import.meta.url);
writeFileSync(out, JSON.stringify({ runtime, benchmarks: rows }, null, 2));
console.log(JSON.stringify({
  runtime,
  medians_ns: Object.fromEntries(
    rows.map((r: { name: string; stats?: { p50?: number } }) => [r.name, r.stats?.p50]),
  ),
}));
pooling.close();
onDemand.close();
