// Deadlines (epoch interruption): a guest that runs away, whatever way it loops, is stopped by
// its deadline with DeadlineExceededError, in an export and in a start function, under pooling
// and on demand; it is poisoned after; a deadline that passes in a host import takes effect
// when the import returns; a module that catches exceptions cannot swallow it; nothing keeps
// running after, and with interruption off nothing changes. Speed is the benchmark's business
// (bench/deadline_bench.ts): the bounds here are hang guards, in seconds.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import {
  ArgumentError,
  Config,
  DeadlineExceededError,
  Engine,
  type GuardedMemory,
  InstanceAllocationStrategy,
  LimitError,
  Module,
} from "../mod.ts";
import {
  catchingModule,
  fanOutChainModule,
  hostCallModule,
  indirectCycleModule,
  loopModule,
  recursionModule,
  startSpinModule,
  tailCallModule,
} from "./fixtures/runaway_modules.ts";
import type { SpinResult } from "./fixtures/spin_worker.ts";
import { GOLDEN_MODULES, type GoldenVariant, rewriteDigest } from "./fixtures/rewrite_golden.ts";

const DEADLINE_MS = 20;
/** A hang guard: a stopped guest comes back long before this. */
const GUARD_MS = 60_000;

type Fn = (...args: unknown[]) => unknown;

const STRATEGIES = {
  pooling: () => InstanceAllocationStrategy.pooling({ instanceLimits: { count: 8 } }),
  "on-demand": () => InstanceAllocationStrategy.onDemand(),
} as const;

function interruptible(kind: keyof typeof STRATEGIES): Engine {
  return new Engine(new Config().withAllocationStrategy(STRATEGIES[kind]()).withInterruption());
}

const tailCalls = WebAssembly.validate(tailCallModule());

const RUNAWAYS: [string, () => Uint8Array<ArrayBuffer>, unknown[]][] = [
  ["br to a loop", () => loopModule("br"), []],
  ["br_if to a loop", () => loopModule("br_if"), []],
  ["br_table to a loop", () => loopModule("br_table"), []],
  ["unbounded recursion (2^60 calls, 60 deep)", recursionModule, [60]],
  ["a call_indirect cycle", indirectCycleModule, [60]],
  ["fan-out without a cycle (64 functions, each calling the next twice)", fanOutChainModule, []],
];
if (tailCalls) RUNAWAYS.push(["return_call of itself", tailCallModule, []]);

/** Calls `f`, expecting DeadlineExceededError; returns it. */
function stopped(f: () => unknown): DeadlineExceededError {
  try {
    f();
  } catch (error) {
    if (error instanceof DeadlineExceededError) return error;
    throw error;
  }
  assert.fail("the call returned");
}

for (const kind of Object.keys(STRATEGIES) as (keyof typeof STRATEGIES)[]) {
  describe(`deadlines (${kind})`, () => {
    for (const [name, build, args] of RUNAWAYS) {
      it(`stop ${name}, in an export, and poison the instance`, { timeout: GUARD_MS }, () => {
        using engine = interruptible(kind);
        const module = new Module(engine, build());
        using instance = engine.instantiate(module, undefined, { deadlineMs: DEADLINE_MS });
        const spin = instance.exports.spin as Fn;
        const started = performance.now();
        const error = stopped(() => spin(...args));
        const tookMs = performance.now() - started;
        assert.equal(error.deadlineMs, DEADLINE_MS);
        assert.ok(error.elapsedMs >= DEADLINE_MS, `stopped after ${error.elapsedMs} ms`);
        assert.ok(tookMs >= DEADLINE_MS, `the call took ${tookMs} ms`);
        assert.match(error.message, /deadline of 20 ms/);
        assert.ok(error.cause instanceof WebAssembly.RuntimeError, "the trap is the cause");
        // Poisoned: every further call throws the same kind of error, at once.
        const again = stopped(() => spin(...args));
        assert.match(again.message, /stopped earlier/);
        assert.equal(engine.stats().runningInstances, 1);
      });
    }

    if (!tailCalls) it.skip("stop return_call of itself: this runtime has no tail calls", () => {});

    it("stop a start function: instantiate throws, nothing is left", { timeout: GUARD_MS }, () => {
      using engine = interruptible(kind);
      const module = new Module(engine, startSpinModule());
      const error = stopped(() =>
        engine.instantiate(module, undefined, { deadlineMs: DEADLINE_MS })
      );
      assert.equal(error.deadlineMs, DEADLINE_MS);
      assert.equal(engine.stats().runningInstances, 0);
      assert.equal(engine.stats().liveInstances, 0);
      // Without a deadline, the same module would never come back: with one, every time.
      for (let i = 0; i < 3; i++) {
        stopped(() => engine.instantiate(module, undefined, { deadlineMs: 5 }));
      }
      assert.equal(engine.stats().liveInstances, 0);
    });

    it("cannot be swallowed by a module that catches exceptions", { timeout: GUARD_MS }, () => {
      using engine = interruptible(kind);
      const module = new Module(engine, catchingModule());
      using instance = engine.instantiate(module, undefined, { deadlineMs: DEADLINE_MS });
      stopped(() => (instance.exports.spin as Fn)());
    });

    it("take effect when a host import returns, before the guest goes on", () => {
      using engine = interruptible(kind);
      const module = new Module(engine, hostCallModule());
      let slow = true;
      const host = (): void => {
        const until = performance.now() + (slow ? 3 * DEADLINE_MS : 0);
        while (performance.now() < until) { /* the host takes its time */ }
      };
      using late = engine.instantiate(module, { env: { host } }, { deadlineMs: DEADLINE_MS });
      stopped(() => (late.exports.run as Fn)());
      const memory = new Uint8Array((late.exports.memory as GuardedMemory).buffer);
      assert.equal(memory[0], 0, "the guest stored nothing after the import returned");
      slow = false;
      using quick = engine.instantiate(module, { env: { host } }, { deadlineMs: DEADLINE_MS });
      assert.equal((quick.exports.run as Fn)(), 1);
      assert.equal(new Uint8Array((quick.exports.memory as GuardedMemory).buffer)[0], 1);
    });

    it("apply to each call from its start, change with setDeadline, and go with null", () => {
      using engine = interruptible(kind);
      const module = new Module(engine, hostCallModule());
      let waitMs = 0;
      const host = (): void => {
        const until = performance.now() + waitMs;
        while (performance.now() < until) { /* busy */ }
      };
      // Margins of 80 ms or more: a loaded 2-core VM can take a core away for tens of ms.
      using instance = engine.instantiate(module, { env: { host } }, { deadlineMs: 200 });
      const run = instance.exports.run as Fn;
      // Calls of 120 ms each, one after the other: each has its own 200 ms.
      waitMs = 120;
      for (let i = 0; i < 2; i++) assert.equal(run(), 1);
      instance.setDeadline(null);
      waitMs = 300;
      assert.equal(run(), 1, "no deadline: the call runs as long as it needs");
      instance.setDeadline(10);
      stopped(() => run());
      assert.throws(() => instance.setDeadline(0), ArgumentError);
      assert.throws(() => instance.setDeadline(-1), ArgumentError);
      assert.throws(() => instance.setDeadline(Number.NaN), ArgumentError);
    });

    it("keep a call made from a host import within the outer call's deadline", () => {
      using engine = interruptible(kind);
      const spinModule = new Module(engine, loopModule("br"));
      const outerModule = new Module(engine, hostCallModule());
      using inner = engine.instantiate(spinModule, undefined, { deadlineMs: 60_000 });
      let innerError: unknown = null;
      const host = (): void => {
        try {
          (inner.exports.spin as Fn)();
        } catch (error) {
          innerError = error;
          throw error;
        }
      };
      using outer = engine.instantiate(outerModule, { env: { host } }, { deadlineMs: DEADLINE_MS });
      const error = stopped(() => (outer.exports.run as Fn)());
      assert.ok(innerError instanceof DeadlineExceededError, "the inner call was stopped");
      assert.equal(error.deadlineMs, DEADLINE_MS, "by the outer call's deadline");
      assert.ok(error.elapsedMs < 30_000);
    });

    it("leave exports, and the rewrite, as they were with interruption off", () => {
      using engine = new Engine(new Config().withAllocationStrategy(STRATEGIES[kind]()));
      const bytes = hostCallModule();
      const module = new Module(engine, bytes);
      using instance = engine.instantiate(module, { env: { host: () => {} } });
      assert.equal((instance.exports.run as Fn)(), 1);
      const plain = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
        env: { host: () => {} },
      });
      // A dedicated instance's export is the runtime's own function, not a wrapper (a recycled
      // one's tenants get wrappers whatever the checks).
      if (kind === "on-demand") {
        assert.equal(String(instance.exports.run), String(plain.exports.run));
      }
      assert.throws(
        () => engine.instantiate(module, { env: { host: () => {} } }, { deadlineMs: 10 }),
        ArgumentError,
      );
      assert.throws(() => instance.setDeadline(10), ArgumentError);
    });
  });
}

describe("deadlines", () => {
  it("never recycle a stopped instance in place: the next tenant gets another", () => {
    using engine = interruptible("pooling");
    const module = new Module(engine, hostCallModule());
    assert.equal(module.notRecyclable, null, "the module's instances are recycled");
    let slow = false;
    const host = (): void => {
      const until = performance.now() + (slow ? 3 * DEADLINE_MS : 0);
      while (performance.now() < until) { /* busy */ }
    };
    const imports = { env: { host } };
    for (let i = 0; i < 3; i++) {
      using quick = engine.instantiate(module, imports, { deadlineMs: DEADLINE_MS });
      assert.equal((quick.exports.run as Fn)(), 1);
    }
    const before = engine.stats();
    slow = true;
    const stoppedOne = engine.instantiate(module, imports, { deadlineMs: DEADLINE_MS });
    const memory = stoppedOne.exports.memory as GuardedMemory;
    new Uint8Array(memory.buffer)[100] = 0xee; // what the stopped tenant left behind
    stopped(() => (stoppedOne.exports.run as Fn)());
    stoppedOne.dispose();
    const after = engine.stats();
    assert.equal(after.recycleFallbacks, before.recycleFallbacks + 1, "destroyed, not recycled");
    slow = false;
    using next = engine.instantiate(module, imports, { deadlineMs: DEADLINE_MS });
    const bytes = new Uint8Array((next.exports.memory as GuardedMemory).buffer);
    assert.equal(bytes[100], 0);
    assert.equal(bytes[0], 0);
    assert.equal((next.exports.run as Fn)(), 1);
  });

  it("refuse a tick outside 0.1 to 1000 ms", () => {
    assert.throws(() => new Config().withInterruption({ tickMs: 0 }), LimitError);
    assert.throws(() => new Config().withInterruption({ tickMs: 5000 }), LimitError);
    assert.throws(() => new Config().withInterruption({ tickMs: Number.NaN }), LimitError);
  });

  it("are kept by a ticker that stops with the last engine", { timeout: GUARD_MS }, () => {
    const engines = [1, 2, 3].map((tickMs) =>
      new Engine(new Config().withInterruption({ tickMs }))
    );
    const module = new Module(engines[2], loopModule("br_if"));
    using instance = engines[2].instantiate(module, undefined, { deadlineMs: 30 });
    stopped(() => (instance.exports.spin as Fn)());
    for (const engine of engines) engine.close();
    assert.equal(threadCount("wasmpool-tick"), 0, "the ticker thread is gone");
    using again = new Engine(new Config().withInterruption());
    assert.equal(threadCount("wasmpool-tick"), 1);
    const m = new Module(again, loopModule("br"));
    using i = again.instantiate(m, undefined, { deadlineMs: 10 });
    stopped(() => (i.exports.spin as Fn)());
  });

  it(
    "leave the process idle after a stop on the main thread (the ticker costs next to nothing)",
    { timeout: GUARD_MS },
    async () => {
      using engine = interruptible("pooling");
      const module = new Module(engine, loopModule("br"));
      using instance = engine.instantiate(module, undefined, { deadlineMs: DEADLINE_MS });
      stopped(() => (instance.exports.spin as Fn)());
      const before = cpuTicks();
      const wallMs = 500;
      await new Promise((resolve) => setTimeout(resolve, wallMs));
      const usedMs = (cpuTicks() - before) * 10;
      // The guest stopped on this thread (the call returned), so this measures what the
      // ticker and the runtime use idle: well under 1% of a core. (The Worker test below is
      // the one where a guest could go on running unseen.)
      assert.ok(usedMs < wallMs / 2, `${usedMs} ms of CPU in ${wallMs} ms idle`);
    },
  );

  it("stop a guest in a Worker attached to the engine; its thread is idle after", {
    timeout: GUARD_MS,
  }, async () => {
    using engine = interruptible("pooling");
    const worker = new Worker(new URL("./fixtures/spin_worker.ts", import.meta.url).href, {
      type: "module",
    });
    try {
      const result = await new Promise<SpinResult>((resolve, reject) => {
        worker.onmessage = (event: MessageEvent<SpinResult>) => resolve(event.data);
        worker.onerror = (event: ErrorEvent) => reject(new Error(event.message));
        worker.postMessage({ handle: engine.handle(), deadlineMs: DEADLINE_MS });
      });
      assert.equal(result.error, null);
      assert.equal(result.stopped, "DeadlineExceededError");
      assert.equal(result.deadlineMs, DEADLINE_MS);
      assert.ok(result.elapsedMs >= DEADLINE_MS);
      // The Worker is alive and has nothing to run: the process stays idle.
      const before = cpuTicks();
      await new Promise((resolve) => setTimeout(resolve, 500));
      const usedMs = (cpuTicks() - before) * 10;
      assert.ok(usedMs < 250, `${usedMs} ms of CPU in 500 ms with the Worker idle`);
    } finally {
      worker.terminate();
    }
  });

  it("rewrite a module without checks exactly as before interruption existed", () => {
    // SHA-256 of the rewrite of the modules below, pooled, recycled and on demand, as the rewrite
    // made them before interruption and fuel (main at 29c597b): off, they must not change by a
    // byte. A change of the rewrite made on purpose remakes the file with
    // `deno run -A tests/fixtures/rewrite_golden.ts > tests/fixtures/rewrite_golden.json`.
    const golden = goldenRewrites();
    for (const [name, digests] of Object.entries(golden)) {
      const bytes = GOLDEN_MODULES[name]();
      for (const variant of ["pooled", "plain", "recycled"] as const) {
        assert.equal(rewriteDigest(bytes, variant), digests[variant], `${name}, ${variant}`);
      }
    }
  });
});

function cpuTicks(): number {
  // Fields 14 and 15 of /proc/self/stat (after the command's closing parenthesis): utime, stime.
  const stat = readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

function threadCount(name: string): number {
  let count = 0;
  for (const task of readdirSync("/proc/self/task")) {
    try {
      if (readFileSync(`/proc/self/task/${task}/comm`, "utf8").trim() === name) count++;
    } catch {
      // The thread ended while listed.
    }
  }
  return count;
}

function goldenRewrites(): Record<string, Record<GoldenVariant, string>> {
  return JSON.parse(
    readFileSync(new URL("./fixtures/rewrite_golden.json", import.meta.url), "utf8"),
  );
}
