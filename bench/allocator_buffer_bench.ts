/**
 * The allocator alone with its memory's bytes read: `engine.allocate`, `memory.buffer`,
 * `dispose` (which detaches the buffer), with a 1-page and an 80-page (5 MiB) memory, pooled
 * and on demand; beside them, what the runtime alone charges for an ArrayBuffer over that
 * much native memory (made through FFI and detached, as wasmpool does) and for its own
 * `WebAssembly.Memory`'s buffer (taken, then detached by `grow(0)`). Baseline: pooling, 1 page.
 *
 * In Bun every row that makes a buffer grows with its size: JavaScriptCore counts each new
 * ArrayBuffer's byteLength as allocation (`ArrayBuffer::gcSizeEstimateInBytes`), external
 * memory or not, so a 5 MiB buffer brings a garbage collection every few buffers
 * (bench/probes/buffer_gc_probe.ts shows it). V8 does not count external memory so, and Deno
 * stays flat.
 *
 * Prints mitata's table and writes `bench/results/allocator-buffer-<runtime>.json`.
 *
 *   deno run --allow-all bench/allocator_buffer_bench.ts
 *   bun bench/allocator_buffer_bench.ts
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
import { Config, Engine, InstanceAllocationStrategy, Module, WASM_PAGE_BYTES } from "../mod.ts";
import { engineState } from "../src/engine_state.ts";
import { buildModule } from "../tests/fixtures/wasm_builder.ts";

const LARGE_PAGES = 80;

function memoryModule(pages: number): Uint8Array<ArrayBuffer> {
  return buildModule({ memories: [{ min: pages, max: pages, shared: false }] });
}

const pooling = new Engine(new Config().withAllocationStrategy(
  InstanceAllocationStrategy.pooling({ instanceLimits: { count: 10 } }),
));
const onDemand = new Engine();
const engines = { pooling, "on-demand": onDemand };

// Native memory for the runtime-alone rows: a live instance's 80-page memory.
const held = pooling.allocate(new Module(pooling, memoryModule(LARGE_PAGES)));
const address = Number(held.memories[0].address);
const lib = engineState(pooling).lib;
const wasmMemories = new Map<number, WebAssembly.Memory>();
for (const pages of [1, LARGE_PAGES]) {
  wasmMemories.set(pages, new WebAssembly.Memory({ initial: pages, maximum: pages }));
}

function pagesName(pages: number): string {
  return pages === 1 ? "1 page" : `${pages} pages`;
}

summary(() => {
  group("allocate + memory.buffer + dispose, by memory size (the allocator alone)", () => {
    for (const [strategy, engine] of Object.entries(engines)) {
      for (const pages of [1, LARGE_PAGES]) {
        const module = new Module(engine, memoryModule(pages));
        const size = pagesName(pages);
        if (strategy === "pooling") {
          bench(`${strategy}, ${size}: allocate + dispose, no buffer`, () => {
            engine.allocate(module).dispose();
          });
        }
        const b = bench(`${strategy}, ${size}: allocate + buffer + dispose`, () => {
          const instance = engine.allocate(module);
          do_not_optimize(instance.memories[0].buffer);
          instance.dispose();
        });
        if (strategy === "pooling" && pages === 1) b.baseline(true);
      }
    }
    for (const pages of [1, LARGE_PAGES]) {
      const size = pagesName(pages);
      bench(`runtime alone: ArrayBuffer over ${size} of native memory (FFI), detached`, () => {
        lib.arrayBuffer(address, pages * WASM_PAGE_BYTES).transfer(0);
      });
      const memory = wasmMemories.get(pages)!;
      bench(`runtime alone: WebAssembly.Memory of ${size}, buffer + grow(0)`, () => {
        do_not_optimize(memory.buffer);
        memory.grow(0);
      });
    }
  });
});

writeResults(`allocator-buffer-${RUNTIME}`, await run());
held.dispose();
pooling.close();
onDemand.close();
