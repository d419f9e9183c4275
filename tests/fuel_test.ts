// Fuel: an instance given n units stops with FuelExhaustedError once it used them, at the same
// point on every run and in every runtime (the numbers below are the same constants for Deno and
// Bun); fuelConsumed counts exactly; a stopped instance is poisoned; fuel and interruption work
// together; engines without fuel refuse it.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  ArgumentError,
  Config,
  Engine,
  FuelExhaustedError,
  type GuardedMemory,
  InstanceAllocationStrategy,
  Module,
} from "../mod.ts";
import {
  countingFuel,
  countingModule,
  fanOutChainModule,
  loopModule,
  recursionModule,
  startSpinModule,
} from "./fixtures/runaway_modules.ts";

type Fn = (...args: unknown[]) => unknown;

const STRATEGIES = {
  pooling: () => InstanceAllocationStrategy.pooling({ instanceLimits: { count: 8 } }),
  "on-demand": () => InstanceAllocationStrategy.onDemand(),
} as const;

function fueled(kind: keyof typeof STRATEGIES, interruption = false): Engine {
  const config = new Config().withAllocationStrategy(STRATEGIES[kind]()).withFuel();
  if (interruption) config.withInterruption();
  return new Engine(config);
}

/** Calls `f`, expecting FuelExhaustedError; returns it. */
function exhausted(f: () => unknown): FuelExhaustedError {
  try {
    f();
  } catch (error) {
    if (error instanceof FuelExhaustedError) return error;
    throw error;
  }
  assert.fail("the call returned");
}

/** The iteration `count` had stored when its fuel ran out (address 0 of its memory). */
function counted(memory: unknown): number {
  return new Uint32Array((memory as GuardedMemory).buffer)[0];
}

for (const kind of Object.keys(STRATEGIES) as (keyof typeof STRATEGIES)[]) {
  for (const interruption of [false, true]) {
    const title = `fuel (${kind}${interruption ? ", with interruption" : ""})`;
    describe(title, () => {
      it("counts exactly what a call runs: 1 at entry, 10 an iteration", () => {
        using engine = fueled(kind, interruption);
        const module = new Module(engine, countingModule());
        using instance = engine.instantiate(module, undefined, { fuel: 1_000_000 });
        const count = instance.exports.count as Fn;
        assert.equal(instance.fuelConsumed, 0);
        assert.equal(count(50), 50);
        assert.equal(instance.fuelConsumed, countingFuel(50));
        assert.equal(count(7), 7);
        assert.equal(instance.fuelConsumed, countingFuel(50) + countingFuel(7));
      });

      it("stops at the same point on every run, and poisons the instance", () => {
        using engine = fueled(kind, interruption);
        const module = new Module(engine, countingModule());
        for (const fuel of [0, 1, 10, 11, 1000, 12_345]) {
          // The entry costs 1 and each iteration 10, charged before it runs: with `fuel`, the
          // iterations that complete are floor((fuel - 1) / 10).
          const completed = fuel === 0 ? 0 : Math.floor((fuel - 1) / 10);
          for (let run = 0; run < 3; run++) {
            using instance = engine.instantiate(module, undefined, { fuel });
            const count = instance.exports.count as Fn;
            const error = exhausted(() => count(1_000_000_000));
            assert.equal(error.fuel, fuel);
            assert.equal(counted(instance.exports.memory), completed, `fuel ${fuel}, run ${run}`);
            assert.equal(instance.fuelConsumed, fuel);
            const again = exhausted(() => count(1));
            assert.match(again.message, /stopped earlier/);
          }
        }
      });

      it("stops runaway recursion, fan-out and loops", () => {
        using engine = fueled(kind, interruption);
        for (
          const [bytes, args] of [
            [recursionModule(), [60]],
            [fanOutChainModule(), []],
            [loopModule("br_table"), []],
          ] as const
        ) {
          const module = new Module(engine, bytes);
          using instance = engine.instantiate(module, undefined, { fuel: 100_000 });
          exhausted(() => (instance.exports.spin as Fn)(...args));
          assert.equal(instance.fuelConsumed, 100_000);
        }
      });

      it("bounds the start function", () => {
        using engine = fueled(kind, interruption);
        const module = new Module(engine, startSpinModule());
        exhausted(() => engine.instantiate(module, undefined, { fuel: 5000 }));
        assert.equal(engine.stats().liveInstances, 0);
      });

      it("gives an instance without `fuel` all it needs", () => {
        using engine = fueled(kind, interruption);
        const module = new Module(engine, countingModule());
        using instance = engine.instantiate(module);
        assert.equal((instance.exports.count as Fn)(100_000), 100_000);
        assert.equal(instance.fuelConsumed, countingFuel(100_000));
      });
    });
  }
}

describe("fuel", () => {
  it("is refused by engines without it, and checked", () => {
    using engine = new Engine();
    const module = new Module(engine, countingModule());
    assert.throws(() => engine.instantiate(module, undefined, { fuel: 10 }), ArgumentError);
    using instance = engine.instantiate(module);
    assert.throws(() => instance.fuelConsumed, ArgumentError);
    using fueledEngine = new Engine(new Config().withFuel());
    const m = new Module(fueledEngine, countingModule());
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 53]) {
      assert.throws(() => fueledEngine.instantiate(m, undefined, { fuel: bad }), ArgumentError);
    }
  });
});
