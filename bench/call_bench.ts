/**
 * Calls of a trivial export, 1,000 per iteration (mitata times one call alone badly: a row
 * that falls out of batching reads the timer per call, 40 ns in Bun) (`read()`, the small module's), in one run per runtime: the
 * runtime's own instance (the baseline); a wasmpool instance of its own (the runtime's function
 * itself); a recycled instance's tenant (its wrapper); the same after 20,000 tenants each of
 * three other modules, 8 at a time (24 warm instances), whose exports of arity 1 to 3 were
 * called through their wrappers (a call site shared by every wrapper turns megamorphic); and the same four with
 * interruption on (`Config#withInterruption`, a far deadline: 10 s, counted from the epoch).
 *
 * The polymorphic rows make their tenants when mitata reaches them, after the other rows ran;
 * the runtime's own function is timed again after them, in the same state of the process.
 *
 * Prints mitata's table and JSON, and writes `bench/results/call-<runtime>.json`.
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
import { smallModuleBytes } from "./small_module.ts";
import { buildModule } from "../tests/fixtures/wasm_builder.ts";

type Read = () => number;

/** Calls in one iteration: one call alone is too short for mitata to time reliably. */
const CALLS = 1000;

let rows = 0;

/**
 * `CALLS` calls of `f`, in code of the row's own: one loop shared by every row would make its
 * call site polymorphic, which is what this bench measures in the wrappers. (Each source is
 * unique: V8 caches `new Function` by its text, profiles included.)
 */
function calls(f: Read): () => void {
  const make = new Function(
    "f",
    "sink",
    `// row ${++rows}\nreturn () => { for (let i = 0; i < ${CALLS}; i++) sink(f()); };`,
  );
  return make(f, do_not_optimize);
}

/** Tenants made of each other module before the polymorphic rows. */
const OTHER_TENANTS = 20_000;
/** Tenants of each other module alive at once: as many warm instances of each. */
const CONCURRENT = 8;
/** The deadline of the rows with interruption on: far, so counted from the epoch. */
const DEADLINE_MS = 10_000;

function pooling(config: Config, recycleInstances: boolean): Engine {
  return new Engine(config.withAllocationStrategy(
    InstanceAllocationStrategy.pooling({ instanceLimits: { count: 100 }, recycleInstances }),
  ));
}

/** A module exporting `f` of `arity` i32 parameters returning `k` plus the first. */
function otherModule(arity: number, k: number): Uint8Array<ArrayBuffer> {
  const code = arity === 0 ? [0x41, k] : [0x20, 0x00, 0x41, k, 0x6a];
  return buildModule({
    types: [{ params: new Array(arity).fill("i32"), results: ["i32"] }],
    functions: [0],
    exports: [{ name: "f", kind: "function", index: 0 }],
    bodies: [{ code }],
  });
}

/**
 * Makes `OTHER_TENANTS` tenants of each of three other modules, `CONCURRENT` of each at a time
 * (so that each module has that many warm instances), calling each one's export.
 */
function manyTenants(engine: Engine, options: { deadlineMs?: number }): void {
  const modules = [1, 2, 3].map((arity) => new Module(engine, otherModule(arity, arity)));
  let sum = 0;
  for (let round = 0; round < OTHER_TENANTS / CONCURRENT; round++) {
    for (const module of modules) {
      const tenants = [];
      for (let i = 0; i < CONCURRENT; i++) {
        tenants.push(engine.instantiate(module, undefined, options));
      }
      for (const tenant of tenants) {
        sum += (tenant.exports.f as (a: number, b: number, c: number) => number)(round, 1, 2);
        tenant.dispose();
      }
    }
  }
  do_not_optimize(sum);
}

const small = smallModuleBytes();
const plainRead = new WebAssembly.Instance(new WebAssembly.Module(small)).exports.read as Read;
const engines = [
  { name: "", config: () => new Config(), options: {} },
  {
    name: ", interruption on",
    config: () => new Config().withInterruption(),
    options: { deadlineMs: DEADLINE_MS },
  },
];
const closing: ({ dispose(): void } | { close(): void })[] = [];

summary(() => {
  group(`${CALLS} calls of a trivial export`, () => {
    bench("plain instance", calls(plainRead)).baseline(true);
    for (const { name, config, options } of engines) {
      const fresh = pooling(config(), false);
      const recycled = pooling(config(), true);
      const own = fresh.instantiate(new Module(fresh, small), undefined, options);
      const ownRead = own.exports.read as Read;
      const smallModule = new Module(recycled, small);
      // The measured tenant is its instance's second: a function called in an earlier tenancy
      // gets wrapper code of its own (src/run/tenant_function.ts), the steady state of a
      // recycled instance.
      const first = recycled.instantiate(smallModule, undefined, options);
      do_not_optimize((first.exports.read as Read)());
      first.dispose();
      const tenant = recycled.instantiate(smallModule, undefined, options);
      const tenantRead = tenant.exports.read as Read;
      closing.push(own, tenant, fresh, recycled);
      bench(`wasmpool dedicated${name}`, calls(ownRead));
      bench(`recycled tenant${name}`, calls(tenantRead));
      bench(`recycled tenant after many of other modules${name}`, function* () {
        manyTenants(recycled, options);
        yield calls(tenantRead);
      });
      // The same environment for the runtime's own function: in JavaScriptCore, the many
      // tenants slow even its call (1.9 to 6.4 ns, Bun 1.4.5).
      bench(`plain instance, after those tenants${name}`, calls(plainRead));
    }
  });
});

writeResults(`call-${RUNTIME}`, await run({ format: "mitata" }));
for (const c of closing) if ("dispose" in c) c.dispose();
for (const c of closing) if ("close" in c) c.close();
