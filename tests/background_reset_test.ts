// Resets off the hot path: a recycled instance disposed while another idle instance of its
// module can serve the next tenant has its memory reset by wasmpool's reset thread
// (`PoolingOptions.backgroundResets`, zig/src/resetter.zig). Every tenant must still see a new
// instance's memory, however the thread and the tenants interleave; the three ways a queued or
// skipped reset ends are counted; and an engine and module dropped without `close()` while a
// reset is in flight must not let the thread read a freed image (a child process).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  Config,
  Engine,
  type GuardedGlobal,
  type GuardedMemory,
  type Instance,
  InstanceAllocationStrategy,
  Module,
} from "../mod.ts";
import { prng } from "./fixtures/prng.ts";
import { COUNTER_INITIAL, START_MARK, tenantModule } from "./fixtures/run_modules.ts";

type Fn = (...args: number[]) => number;

const CYCLES = 4_000;
const WARM = 3;

function engineWith(backgroundResets: boolean): Engine {
  return new Engine(new Config().withAllocationStrategy(
    InstanceAllocationStrategy.pooling({ instanceLimits: { count: 8 }, backgroundResets }),
  ));
}

/** Runs `CYCLES` seeded tenants one after another over `WARM` warm instances; each checks that
 * what every earlier tenant wrote is gone, and writes somewhere of its own. */
function cycle(engine: Engine): void {
  const bytes = tenantModule({ exportTable: false });
  const initial = new Uint8Array(
    (new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports.memory as WebAssembly.Memory)
      .buffer,
  ).slice();
  const module = new Module(engine, bytes);
  assert.equal(engine.warm(module, WARM), WARM);
  const random = prng(11);
  const written = new Set<number>();
  // Tenants come WARM at a time and leave back to back, so that disposals come microseconds
  // apart (a burst, which wakes the reset thread) however long a tenant's own checks take.
  const group: Instance[] = [];
  for (let i = 0; i < CYCLES; i++) {
    const instance: Instance = engine.instantiate(module);
    const memory = new Uint8Array((instance.exports.memory as GuardedMemory).buffer);
    for (const offset of written) {
      assert.equal(memory[offset], initial[offset], `tenant ${i}: byte ${offset}`);
    }
    assert.equal((instance.exports.counter as GuardedGlobal).value, COUNTER_INITIAL);
    // Writes through code and through the buffer, some on pages no earlier tenant touched.
    for (let w = 1 + (random() * 4 | 0); w > 0; w--) {
      const offset = Math.floor(random() * memory.length);
      if (offset === START_MARK.offset) continue;
      written.add(offset);
      if (random() < 0.5) (instance.exports.store as Fn)(offset, 1 + (random() * 255 | 0));
      else memory[offset] = 1 + (random() * 255 | 0);
    }
    (instance.exports.bump as Fn)();
    group.push(instance);
    if (group.length === WARM || i === CYCLES - 1) {
      for (const tenant of group) tenant.dispose();
      group.length = 0;
    }
  }
}

describe("background resets", () => {
  it(`give ${CYCLES} tenants of ${WARM} warm instances a clean memory, counting each reset`, {
    timeout: 120_000,
  }, () => {
    using engine = engineWith(true);
    cycle(engine);
    const stats = engine.stats();
    assert.equal(stats.recycled, CYCLES);
    assert.equal(stats.warmMisses, 0);
    // The first of each full group to leave found no other instance idle and was reset where
    // it ended; every later one went through the reset thread's queue, or was done inline
    // while the thread slept.
    const groups = Math.floor(CYCLES / WARM);
    assert.equal(
      stats.hostResetsBackground + stats.hostResetsClaimed + stats.hostResetsInline,
      CYCLES - groups,
    );
    assert.ok(
      stats.hostResetsBackground > 0,
      `back-to-back disposals woke the reset thread: ${JSON.stringify(stats)}`,
    );
  });

  it("stay inline when backgroundResets is false", () => {
    using engine = engineWith(false);
    cycle(engine);
    const stats = engine.stats();
    assert.equal(stats.recycled, CYCLES);
    assert.equal(stats.hostResetsBackground + stats.hostResetsClaimed, 0);
    assert.equal(stats.hostResetsInline, 0, "not queued at all: reset where the tenant ended");
  });

  it("are off by default (the reset thread spins a core; see PoolingOptions)", () => {
    using engine = new Engine(new Config().withAllocationStrategy(
      InstanceAllocationStrategy.pooling({ instanceLimits: { count: 8 } }),
    ));
    const module = new Module(engine, tenantModule({ exportTable: false }));
    engine.warm(module, WARM);
    for (let i = 0; i < 200; i++) engine.instantiate(module).dispose();
    const stats = engine.stats();
    assert.equal(stats.recycled, 200);
    assert.equal(stats.hostResetsBackground + stats.hostResetsClaimed + stats.hostResetWakes, 0);
  });

  it("are inline with a single warm instance (the next tenant would wait for the reset)", () => {
    using engine = engineWith(true);
    const module = new Module(engine, tenantModule({ exportTable: false }));
    for (let i = 0; i < 200; i++) engine.instantiate(module).dispose();
    const stats = engine.stats();
    assert.equal(stats.warmHits, 199);
    assert.equal(stats.hostResetsBackground + stats.hostResetsClaimed, 0);
  });

  it("survive an engine and its module dropped while the reset thread restores a memory", {
    timeout: 120_000,
  }, () => {
    const child = decodeURIComponent(
      new URL("./fixtures/dropped_engine_child.ts", import.meta.url).pathname,
    );
    const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
    const [command, args] = deno !== undefined
      ? [deno.execPath(), ["run", "--allow-all", "--v8-flags=--expose-gc", child]]
      : [(globalThis as unknown as { process: { execPath: string } }).process.execPath, [child]];
    const result = spawnSync(command, args, { encoding: "utf8", timeout: 110_000 });
    assert.equal(result.error, undefined, `could not run ${command}: ${result.error}`);
    assert.equal(
      result.status,
      0,
      `status ${result.status}, signal ${result.signal}\n${result.stdout}\n${result.stderr}`,
    );
    assert.match(result.stdout, /^dropped \d+ engines, \d+ background resets$/m);
  });
});
