/**
 * A tiktoken tenant driven by its own wasm-bindgen glue (`tiktoken_bg.js`, unchanged): get an
 * instance, build an encoder (small ranks), encode a short text, free it, dispose. Every such
 * tenant grows the memory (9 pages, its allocator's first allocation), so a recycled instance is
 * replaced after each tenant unless `recycleGrownMemoryPages` keeps it. Rows: the runtime's own
 * `new WebAssembly.Instance` per tenant (the baseline; its memory's buffer is detached with
 * `grow(0)` at the end, which the glue needs to take the next instance's memory), wasmpool with
 * `recycleGrownMemoryPages` 0 (replaced), and 1024 (kept). Prints the recycled share of each
 * engine after the run. Writes `bench/results/grown-<runtime>.json`.
 *
 * Run: `.tools/bin/deno run -A bench/grown_bench.ts`, `.tools/bin/bun bench/grown_bench.ts`.
 *
 * @module
 */

import { bench, group, run, summary } from "../.tools/node_modules/mitata/src/main.mjs";
import { pathToFileURL } from "node:url";
import { RUNTIME, writeResults } from "./mitata_results.ts";
import { Config, Engine, InstanceAllocationStrategy, Module } from "../mod.ts";
import { readRealModule } from "../tests/fixtures/npm_modules.ts";
import {
  smallRanks,
  TIKTOKEN,
  TIKTOKEN_GLUE_PATH,
  TIKTOKEN_PATTERN,
  type TiktokenGlue,
} from "../tests/fixtures/tiktoken_glue.ts";

const glue = await import(pathToFileURL(TIKTOKEN_GLUE_PATH).href) as TiktokenGlue;
const bytes = readRealModule(TIKTOKEN);
const imports = { "./tiktoken_bg.js": glue as unknown as Record<string, unknown> };
const wasmModule = new WebAssembly.Module(bytes);
const ranks = smallRanks();
const SPECIAL = { "<|endoftext|>": 300 };
const TEXT = "hello world, the thing in the hell of the world";

/** One tenant's work through the glue, on `exports`. */
function tenant(exports: unknown): number {
  glue.__wbg_set_wasm(exports);
  const encoder = new glue.Tiktoken(ranks, SPECIAL, TIKTOKEN_PATTERN);
  try {
    return encoder.encode(TEXT, "all").length;
  } finally {
    encoder.free();
  }
}

function pooled(recycleGrownMemoryPages: number): Engine {
  return new Engine(new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling({
    instanceLimits: { count: 4 },
    moduleLimits: { memoryPages: 2048 },
    recycleGrownMemoryPages,
  })));
}

const engines = {
  "recycleGrownMemoryPages 0": pooled(0),
  "recycleGrownMemoryPages 1024": pooled(1024),
};

summary(() => {
  group(`a tiktoken tenant through its glue (${TIKTOKEN.package}@${TIKTOKEN.version})`, () => {
    bench("WebAssembly.Instance + glue", () => {
      const plain = new WebAssembly.Instance(wasmModule, imports as WebAssembly.Imports);
      tenant(plain.exports);
      (plain.exports.memory as WebAssembly.Memory).grow(0);
    }).baseline(true);
    for (const [name, engine] of Object.entries(engines)) {
      const module = new Module(engine, bytes);
      bench(`wasmpool ${name}`, () => {
        using instance = engine.instantiate(module, imports);
        tenant(instance.exports);
      });
    }
  });
});

writeResults(`grown-${RUNTIME}`, await run({ format: "mitata" }));
for (const [name, engine] of Object.entries(engines)) {
  const s = engine.stats();
  const tenants = s.warmHits + s.warmMisses;
  console.log(JSON.stringify({
    engine: name,
    tenants,
    recycledShare: tenants === 0 ? 0 : s.warmHits / tenants,
    recycledGrown: s.recycledGrown,
    recycledGrownReplaced: s.recycledGrownReplaced,
  }));
  engine.close();
}
