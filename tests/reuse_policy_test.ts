// The reuse policies of recycled instances, as `wasmtime serve` and Spin give them: an instance
// replaced after `maxInstanceReuse` tenants, idle instances beyond `maxUnusedWarmSlots` released
// after `idleInstanceTimeoutMs` by a timer that never keeps the process alive.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  Config,
  Engine,
  type EngineStats,
  type Instance,
  InstanceAllocationStrategy,
  LimitError,
  Module,
  type PoolingOptions,
} from "../mod.ts";
import { COUNTER_INITIAL, tenantModule } from "./fixtures/run_modules.ts";

type Fn = (...args: number[]) => number;

function engineWith(options: PoolingOptions): Engine {
  return new Engine(new Config().withAllocationStrategy(
    InstanceAllocationStrategy.pooling({ instanceLimits: { count: 8 }, ...options }),
  ));
}

function fn(instance: Instance, name: string): Fn {
  return instance.exports[name] as Fn;
}

/** Polls `stats` until `done` holds; fails after `limitMs` (a bound on a hang, not a speed). */
async function until(
  engine: Engine,
  done: (stats: EngineStats) => boolean,
  limitMs = 20_000,
): Promise<EngineStats> {
  const start = Date.now();
  for (;;) {
    const stats = engine.stats();
    if (done(stats)) return stats;
    if (Date.now() - start > limitMs) {
      assert.fail(`stats never reached the state: ${JSON.stringify(stats)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("maxInstanceReuse", () => {
  it("replaces an instance after that many tenants, each seeing a new instance", () => {
    using engine = engineWith({ maxInstanceReuse: 3 });
    const module = new Module(engine, tenantModule({ exportTable: false }));
    for (let i = 0; i < 10; i++) {
      using instance = engine.instantiate(module);
      assert.equal(fn(instance, "bump")(), COUNTER_INITIAL + 1, `tenant ${i}`);
      assert.equal(fn(instance, "load")(200), 0, `tenant ${i}`);
      fn(instance, "store")(200, 9);
    }
    const stats = engine.stats();
    // Tenants 0-2, 3-5, 6-8 on three instances, retired; tenant 9 on a fourth, idle now.
    assert.equal(stats.warmRetired, 3);
    assert.equal(stats.warmMisses, 4);
    assert.equal(stats.warmHits, 6);
    assert.equal(stats.recycled, 7); // tenants 0, 1, 3, 4, 6, 7, 9
    assert.equal(stats.warmIdle, 1);
    assert.equal(stats.runningInstances, 0);
    assert.equal(stats.liveInstances, 0);
  });

  it("of 1 gives every tenant an instance of its own; unlimited by default", () => {
    using once = engineWith({ maxInstanceReuse: 1 });
    using always = engineWith({});
    for (const engine of [once, always]) {
      const module = new Module(engine, tenantModule({ exportTable: false }));
      for (let i = 0; i < 5; i++) engine.instantiate(module).dispose();
    }
    assert.deepEqual(
      [once.stats().warmMisses, once.stats().warmRetired, once.stats().warmIdle],
      [5, 5, 0],
    );
    assert.deepEqual(
      [always.stats().warmMisses, always.stats().warmRetired, always.stats().warmHits],
      [1, 0, 4],
    );
  });

  it("must be a whole number from 1, or Infinity", () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      assert.throws(
        () => InstanceAllocationStrategy.pooling({ maxInstanceReuse: bad }),
        (error: unknown) =>
          error instanceof LimitError && error.message.includes("maxInstanceReuse") &&
          error.message.includes(String(bad)),
      );
    }
    assert.equal(
      InstanceAllocationStrategy.pooling({ maxInstanceReuse: Infinity }).pooling
        ?.maxInstanceReuse,
      Infinity,
    );
  });
});

describe("idleInstanceTimeoutMs", () => {
  it("releases the idle instances beyond maxUnusedWarmSlots, oldest first, after it", async () => {
    using engine = engineWith({ maxUnusedWarmSlots: 2, idleInstanceTimeoutMs: 300 });
    const module = new Module(engine, tenantModule({ exportTable: false }));
    const burst = Array.from({ length: 6 }, () => engine.instantiate(module));
    for (const instance of burst) instance.dispose();
    assert.equal(engine.stats().warmIdle, 6);
    // Well before the timeout (timers fire late under load, never early): all still there.
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(engine.stats().warmExpired, 0);
    const stats = await until(engine, (s) => s.warmIdle <= 2);
    assert.equal(stats.warmIdle, 2);
    assert.equal(stats.warmExpired, 4);
    // The kept ones serve the next tenants, as new instances.
    const a = engine.instantiate(module);
    const b = engine.instantiate(module);
    assert.equal(fn(a, "bump")(), COUNTER_INITIAL + 1);
    assert.equal(fn(b, "load")(0), 1);
    assert.equal(engine.stats().warmHits, 2);
    a.dispose();
    b.dispose();
  });

  it("counts the kept number over every module, releasing the oldest of any", async () => {
    using engine = engineWith({ maxUnusedWarmSlots: 2, idleInstanceTimeoutMs: 200 });
    const first = new Module(engine, tenantModule({ exportTable: false }));
    const second = new Module(
      engine,
      tenantModule({ exportTable: false, data: new Uint8Array([9]) }),
    );
    const older = [engine.instantiate(first), engine.instantiate(first)];
    const younger = [engine.instantiate(second), engine.instantiate(second)];
    for (const instance of older) instance.dispose();
    // A later sweep count for the second module's instances: they went idle a while after.
    await new Promise((resolve) => setTimeout(resolve, 120));
    for (const instance of younger) instance.dispose();
    const stats = await until(engine, (s) => s.warmIdle <= 2);
    assert.equal(stats.warmExpired, 2);
    // The second module's two are the ones kept: both its tenants are served warm.
    const before = engine.stats().warmHits;
    const a = engine.instantiate(second);
    const b = engine.instantiate(second);
    assert.equal(fn(a, "load")(0), 9);
    assert.equal(engine.stats().warmHits - before, 2);
    a.dispose();
    b.dispose();
  });

  it("keeps idle instances while tenants keep coming, and all with Infinity", async () => {
    using engine = engineWith({ maxUnusedWarmSlots: 0, idleInstanceTimeoutMs: Infinity });
    const module = new Module(engine, tenantModule({ exportTable: false }));
    const burst = Array.from({ length: 4 }, () => engine.instantiate(module));
    for (const instance of burst) instance.dispose();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(engine.stats().warmIdle, 4);
    assert.equal(engine.stats().warmExpired, 0);
  });

  it("stops with the engine: close() leaves no sweep to run", async () => {
    const engine = engineWith({ maxUnusedWarmSlots: 0, idleInstanceTimeoutMs: 20 });
    const module = new Module(engine, tenantModule({ exportTable: false }));
    engine.instantiate(module).dispose();
    engine.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(engine.closed, true);
  });

  it("must be a positive number of milliseconds, or Infinity", () => {
    for (const bad of [0, -5, Number.NaN, 2 ** 40]) {
      assert.throws(
        () => InstanceAllocationStrategy.pooling({ idleInstanceTimeoutMs: bad }),
        (error: unknown) =>
          error instanceof LimitError && error.message.includes("idleInstanceTimeoutMs") &&
          error.message.includes(String(bad)),
      );
    }
    assert.equal(
      InstanceAllocationStrategy.pooling({}).pooling?.idleInstanceTimeoutMs,
      1000,
    );
  });

  it("never keeps the process alive: a script that leaves idle instances exits", () => {
    const child = new URL("./fixtures/idle_engine_child.ts", import.meta.url).pathname;
    const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
    const [command, args] = deno !== undefined
      ? [deno.execPath(), ["run", "--allow-all", child]]
      : [(globalThis as unknown as { process: { execPath: string } }).process.execPath, [child]];
    // The timeout bounds a hang: the armed timer waits 10 minutes.
    const result = spawnSync(command, args, { encoding: "utf8", timeout: 60_000 });
    assert.equal(result.error, undefined, `could not run ${command}: ${result.error}`);
    assert.equal(result.signal, null, `killed: the timer kept the process alive\n${result.stderr}`);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^idle 6, expired 0$/m);
  });
});
