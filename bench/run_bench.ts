/**
 * Running instances (issues 9 and 10's goals), in one run per runtime:
 *
 * - instantiate + one call + dispose, for the small module and the 64 KiB and 5 MiB image
 *   modules of bench/image_modules.ts (`read()` reads offset 0): the runtime's own
 *   `new WebAssembly.Instance` + the same call (the baseline); wasmpool pooling with recycled
 *   instances (the default: an instance reset in place serves the next tenant), with one warm
 *   instance (reset inline at disposal) and with two (reset on the reset thread while the
 *   other serves the next tenant); wasmpool pooling
 *   with a new instance each time (`recycleInstances: false`); on demand; and Wasmtime 50's
 *   pooling + copy-on-write cycle (store, instantiate_pre, drop: no call) on the same bytes,
 *   where its library is installed;
 * - one call of a trivial export: the runtime's own instance, a wasmpool instance of its own
 *   (the runtime's function itself) and a recycled one (a tenant's wrapper);
 * - 1,000 host calls from wasm: a direct import (the runtime's instance) against the
 *   trampoline a recycled instance calls its tenant's import through.
 *
 * Prints mitata's table and writes `bench/results/run-<runtime>.json`.
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
import { Config, Engine, InstanceAllocationStrategy, Module } from "../mod.ts";
import { image5MiBModuleBytes, image64KiBModuleBytes } from "./image_modules.ts";
import { smallModuleBytes } from "./small_module.ts";
import { openWasmtime, WasmtimeEngine } from "./wasmtime/mod.ts";
import { buildModule } from "../tests/fixtures/wasm_builder.ts";

type Read = () => number;

function pooling(recycleInstances: boolean, backgroundResets = false): Engine {
  return new Engine(new Config().withAllocationStrategy(
    InstanceAllocationStrategy.pooling({
      instanceLimits: { count: 100 },
      recycleInstances,
      backgroundResets,
    }),
  ));
}

const recycled = pooling(true);
const background = pooling(true, true);
const fresh = pooling(false);
const onDemand = new Engine();
const wasmtimeLib = await openWasmtime();
const wasmtime = wasmtimeLib === null ? null : new WasmtimeEngine(wasmtimeLib, {
  allocation: "pooling",
  memoryInitCow: true,
  poolSize: 100,
});

const modules: [string, Uint8Array<ArrayBuffer>][] = [
  ["small module", smallModuleBytes()],
  ["64 KiB image (memory 80 96)", image64KiBModuleBytes()],
  ["5 MiB image (80 segments, memory 80 96)", image5MiBModuleBytes()],
];

function cycle(engine: Engine, module: Module): () => void {
  return () => {
    const instance = engine.instantiate(module);
    do_not_optimize((instance.exports.read as Read)());
    instance.dispose();
  };
}

for (const [name, bytes] of modules) {
  const plain = new WebAssembly.Module(bytes);
  const wasmtimeCycle = wasmtime?.instantiatePre(bytes).cycle ?? null;
  summary(() => {
    group(`instantiate + call + dispose, ${name}`, () => {
      bench("WebAssembly.Instance + call", () => {
        const instance = new WebAssembly.Instance(plain);
        do_not_optimize((instance.exports.read as Read)());
      }).baseline(true);
      bench("wasmpool pooling, recycled", cycle(recycled, new Module(recycled, bytes)));
      // Two warm instances and the reset thread on (PoolingOptions.backgroundResets): each
      // tenant's reset runs on the reset thread while the other instance serves the next tenant.
      const twoWarm = new Module(background, bytes);
      background.warm(twoWarm, 2);
      bench("wasmpool pooling, recycled, 2 warm, reset thread", cycle(background, twoWarm));
      bench("wasmpool pooling, new instance", cycle(fresh, new Module(fresh, bytes)));
      bench("wasmpool on-demand", cycle(onDemand, new Module(onDemand, bytes)));
      if (wasmtimeCycle !== null) bench("Wasmtime pooling + CoW (no call)", wasmtimeCycle);
    });
  });
}

const small = smallModuleBytes();
const plainRead = new WebAssembly.Instance(new WebAssembly.Module(small)).exports.read as Read;
const own = fresh.instantiate(new Module(fresh, small));
const ownRead = own.exports.read as Read;
const tenant = recycled.instantiate(new Module(recycled, small));
const tenantRead = tenant.exports.read as Read;

summary(() => {
  group("one call of a trivial export", () => {
    bench("plain instance", () => do_not_optimize(plainRead())).baseline(true);
    bench("wasmpool instance of its own", () => do_not_optimize(ownRead()));
    bench("wasmpool recycled instance (a tenant's wrapper)", () => do_not_optimize(tenantRead()));
  });
});

// run(n): calls env.host(i) n times; the host function adds.
const caller = buildModule({
  types: [{ params: ["i32"], results: ["i32"] }],
  imports: [{ module: "env", name: "host", desc: { kind: "function", type: 0 } }],
  functions: [0],
  exports: [{ name: "run", kind: "function", index: 1 }],
  bodies: [{
    locals: [[1, "i32"]],
    code: [
      0x03,
      0x40, // loop
      0x20,
      0x01,
      0x10,
      0x00,
      0x1a, // local.get 1; call host; drop
      0x20,
      0x01,
      0x41,
      0x01,
      0x6a,
      0x22,
      0x01, // local.get 1; i32.const 1; i32.add; local.tee 1
      0x20,
      0x00,
      0x49,
      0x0d,
      0x00, // local.get 0; i32.lt_u; br_if 0
      0x0b, // end
      0x20,
      0x01, // local.get 1
    ],
  }],
});
let sink = 0;
const host = (x: number): number => (sink += x);
const directRun = new WebAssembly.Instance(new WebAssembly.Module(caller), { env: { host } })
  .exports.run as (n: number) => number;
const trampolined = recycled.instantiate(new Module(recycled, caller), { env: { host } });
const trampolinedRun = trampolined.exports.run as (n: number) => number;

summary(() => {
  group("1,000 host calls from wasm", () => {
    bench("direct import (runtime's instance)", () => do_not_optimize(directRun(1000)))
      .baseline(true);
    bench("trampoline (recycled instance)", () => do_not_optimize(trampolinedRun(1000)));
  });
});

writeResults(`run-${RUNTIME}`, await run({ format: "mitata" }));
do_not_optimize(sink);
own.dispose();
tenant.dispose();
trampolined.dispose();
wasmtime?.close();
recycled.close();
fresh.close();
onDemand.close();
