// A memory wasmpool drops instead of pooling (its tenant grew it, it was evicted for another
// shape, a stopped tenant poisoned it, its engine closed) is given back to the runtime with everything its tenants wrote:
// resident memory stays bounded through many such tenants in one job, as it does for plain
// `WebAssembly.Memory` objects. Each tenant writes every 4 KiB page of a 2 MiB memory that
// holds an image (mapped copy-on-write in Deno), and the whole loop runs in one synchronous
// job, as a batch or a benchmark does.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import process from "node:process";
import { Config, Engine, FuelExhaustedError, InstanceAllocationStrategy, Module } from "../mod.ts";
import { collect } from "./fixtures/gc.ts";
import { buildModule } from "./fixtures/wasm_builder.ts";

const PAGES = 32;
const TENANTS = 200;
const WRITTEN_MIB = TENANTS * PAGES / 16;
// What the tenants wrote, 400 MiB: resident memory may grow by a quarter of it (the memories
// not yet collected between collections, the heap, code), not by all of it.
const BOUND_MIB = WRITTEN_MIB / 4;

/** The process's resident memory, in MiB (Linux). */
function residentMiB(): number {
  const pages = Number(readFileSync("/proc/self/statm", "utf8").split(" ")[1]);
  return pages * 4096 / 2 ** 20;
}

/** A memory of `pages` holding an image, and `spin`, a function that never returns. */
function moduleBytes(pages: number): Uint8Array<ArrayBuffer> {
  return buildModule({
    types: [{ params: [], results: [] }],
    functions: [0],
    memories: [{ min: pages, max: 64, shared: false }],
    bodies: [{ locals: [], code: [0x03, 0x40, 0x0c, 0x00, 0x0b] }], // loop br 0 end
    exports: [
      { name: "memory", kind: "memory", index: 0 },
      { name: "spin", kind: "function", index: 0 },
    ],
    data: [{ mode: "active", data: new Uint8Array(65536).fill(7) }],
  });
}

function pooling(count: number, fuel = false): Engine {
  const config = new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling({
    moduleLimits: { memoryPages: 64 },
    instanceLimits: { count, memoryReservationSize: 64 * 65536 },
  }));
  return new Engine(fuel ? config.withFuel() : config);
}

type Exported = { grow(pages: number): number; buffer: ArrayBuffer };

/**
 * Instantiates, lets the tenant write every page (growing the memory first when `grow`, running
 * out of fuel after when `stop`), disposes.
 */
function tenant(engine: Engine, module: Module, grow: boolean, stop = false): void {
  const instance = engine.instantiate(module, undefined, stop ? { fuel: 100 } : undefined);
  const memory = instance.exports.memory as Exported;
  if (grow) memory.grow(1);
  const bytes = new Uint8Array(memory.buffer);
  assert.equal(bytes[0], 7);
  for (let at = 0; at < bytes.length; at += 4096) bytes[at] = 1;
  if (stop) {
    assert.throws(() => (instance.exports.spin as () => void)(), FuelExhaustedError);
  }
  instance.dispose();
}

/** Resident memory growth, in MiB, over `TENANTS` calls of `run`, collecting every 10. */
function growthMiB(run: (i: number) => void): number {
  collect();
  const before = residentMiB();
  for (let i = 0; i < TENANTS; i++) {
    run(i);
    if (i % 10 === 9) collect();
  }
  collect();
  return residentMiB() - before;
}

describe("memories wasmpool drops", { skip: process.platform !== "linux" }, () => {
  it("give back what their tenants wrote when the tenants grew them", () => {
    using engine = pooling(4);
    const module = new Module(engine, moduleBytes(PAGES));
    const growth = growthMiB(() => tenant(engine, module, true));
    assert.equal(engine.stats().hostMemoriesReplaced, TENANTS);
    assert.ok(growth < BOUND_MIB, `resident memory grew by ${growth} MiB (bound ${BOUND_MIB})`);
  });

  it("give back what their tenants wrote when they are evicted for another shape", () => {
    using engine = pooling(1);
    const modules = [new Module(engine, moduleBytes(PAGES)), new Module(engine, moduleBytes(33))];
    const growth = growthMiB((i) => tenant(engine, modules[i % 2], false));
    assert.ok(growth < BOUND_MIB, `resident memory grew by ${growth} MiB (bound ${BOUND_MIB})`);
  });

  it("give back what their tenants wrote when a stopped tenant poisoned them", () => {
    using engine = pooling(4, true);
    const module = new Module(engine, moduleBytes(PAGES));
    const growth = growthMiB(() => tenant(engine, module, false, true));
    assert.equal(engine.stats().hostMemoriesReplaced, TENANTS);
    assert.ok(growth < BOUND_MIB, `resident memory grew by ${growth} MiB (bound ${BOUND_MIB})`);
  });

  it("give back what their tenants wrote when their engine closes", () => {
    const bytes = moduleBytes(PAGES);
    const growth = growthMiB(() => {
      using engine = pooling(1);
      tenant(engine, new Module(engine, bytes), false);
    });
    assert.ok(growth < BOUND_MIB, `resident memory grew by ${growth} MiB (bound ${BOUND_MIB})`);
  });
});
