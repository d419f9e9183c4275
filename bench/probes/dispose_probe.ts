/**
 * Where a snapshot tenant's dispose goes (issue 17): times every native call made while
 * instantiating and disposing a tenant of tiktoken's 18 MiB snapshot that only wraps the
 * encoder, one that also encodes a short text, and the small module's recycled cycle. Each
 * call of the library is wrapped with a timer (which adds its own cost to each); the table
 * gives the mean µs per cycle of each call in each phase.
 *
 * What it showed (shared 2-core VM, Linux 6.18, noisy): a recycled tenant's dispose makes two
 * native calls, `instanceLeave` (~1 µs) and `hostMemoryReset`; the pool slot's reset
 * (`instanceDispose`) is not on this path at all. `hostMemoryReset` costs 1.4-4 µs for the
 * small module and 9-19 µs for the snapshot tenant that writes nothing: that is the
 * PAGEMAP_SCAN walk of the 4704 page-table entries of the 18 MiB memory (every one present:
 * earlier tenants read the image), about 2-2.5 ns a page in the kernel's fast path, whatever
 * was written. The encoding tenant writes 79 pages in 15 runs; its reset (58-75 µs) was then
 * a scan, and per run a finer scan for the image's copies and a protection, each a system
 * call (~1 µs): host_memory.zig now groups runs closer than 64 pages.
 *
 *   deno run --allow-all --v8-flags=--expose-gc bench/probes/dispose_probe.ts
 *   bun bench/probes/dispose_probe.ts
 *
 * @module
 */

import { Config, Engine, InstanceAllocationStrategy, Module } from "../../mod.ts";
import { native } from "../../src/ffi/load.ts";
import { readRealModule } from "../../tests/fixtures/npm_modules.ts";
import { cl100k } from "../../tests/fixtures/snapshot_modules.ts";
import {
  TIKTOKEN,
  TIKTOKEN_GLUE_PATH,
  type TiktokenGlue,
} from "../../tests/fixtures/tiktoken_glue.ts";
import { smallModuleBytes } from "../small_module.ts";
import { RUNTIME } from "../mitata_results.ts";

const SHORT_TEXT = "Snapshots at run time, in a JavaScript host: hello world!";
const CYCLES = Number(process.env.CYCLES ?? 5000);
type Encoder = InstanceType<TiktokenGlue["Tiktoken"]> & {
  __wbg_ptr: number;
  __destroy_into_raw(): number;
};
type Glue = TiktokenGlue & { Tiktoken: { __wrap(ptr: number): Encoder } };

const lib = native() as unknown as Record<string, unknown>;
let phase = "other";
const totals = new Map<string, { ns: number; calls: number }>();
for (const name of Object.keys(lib)) {
  const f = lib[name];
  if (typeof f !== "function") continue;
  lib[name] = (...args: unknown[]) => {
    const t0 = performance.now();
    const r = (f as (...a: unknown[]) => unknown)(...args);
    const key = `${phase} ${name}`;
    const e = totals.get(key) ?? { ns: 0, calls: 0 };
    e.ns += (performance.now() - t0) * 1e6;
    e.calls += 1;
    totals.set(key, e);
    return r;
  };
}

const engine = new Engine(new Config().withAllocationStrategy(
  InstanceAllocationStrategy.pooling({
    instanceLimits: { count: 16 },
    moduleLimits: { memoryPages: 1024 },
  }),
));
const glue = await import(TIKTOKEN_GLUE_PATH) as Glue;
const imports = { "./tiktoken_bg.js": glue as unknown as Record<string, unknown> };
const ranks = cl100k();
const tiktoken = new Module(engine, readRealModule(TIKTOKEN));
const small = new Module(engine, smallModuleBytes());
const original = engine.instantiate(tiktoken, imports);
glue.__wbg_set_wasm(original.exports);
const built = new glue.Tiktoken(ranks.bpe_ranks, ranks.special_tokens, ranks.pat_str) as Encoder;
const ptr = built.__wbg_ptr;
const snapshot = original.snapshot();

function cycles(label: string, one: () => void): void {
  for (let i = 0; i < 200; i++) one(); // warm
  totals.clear();
  for (let i = 0; i < CYCLES; i++) one();
  for (const [k, v] of totals) {
    console.log(
      `${label.padEnd(9)} ${k.padEnd(40)} ${(v.ns / CYCLES / 1000).toFixed(2)} µs/cycle (${
        (v.calls / CYCLES).toFixed(1)
      } calls)`,
    );
  }
}

function timed(
  label: string,
  inst: () => { dispose(): void; exports: Record<string, unknown> },
  use: (e: Record<string, unknown>) => void,
) {
  let a = 0, b = 0;
  cycles(label, () => {
    phase = "inst";
    const t0 = performance.now();
    const instance = inst();
    use(instance.exports);
    const t1 = performance.now();
    phase = "disp";
    instance.dispose();
    const t2 = performance.now();
    a += t1 - t0;
    b += t2 - t1;
  });
  console.log(
    `${label}: instantiate+use ${(a * 1000 / (CYCLES + 200)).toFixed(2)} µs, dispose ${
      (b * 1000 / (CYCLES + 200)).toFixed(2)
    } µs (${RUNTIME})`,
  );
}

timed("small", () => engine.instantiate(small), (e) => (e.read as () => number)());
timed("snapshot", () => engine.instantiate(snapshot, imports), (e) => {
  glue.__wbg_set_wasm(e);
  glue.Tiktoken.__wrap(ptr).__destroy_into_raw();
});
const before = engine.stats().hostPagesRestored;
timed("encode", () => engine.instantiate(snapshot, imports), (e) => {
  glue.__wbg_set_wasm(e);
  const encoder = glue.Tiktoken.__wrap(ptr);
  encoder.encode(SHORT_TEXT, "all");
  encoder.__destroy_into_raw();
});
const restored = engine.stats().hostPagesRestored - before;
console.log(`encode: ${(restored / (CYCLES + 200)).toFixed(1)} host pages restored per cycle`);
const s = engine.stats();
console.log(JSON.stringify({
  hostPagesRestored: s.hostPagesRestored,
  hostFullResets: s.hostFullResets,
  hostWriteTracking: s.hostWriteTracking,
  recycled: s.recycled,
}));
