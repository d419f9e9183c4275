// Options objects: a misspelt key is an ArgumentError naming it (and the name it was probably
// meant to be), never a default silently kept; every documented key is still accepted.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  ArgumentError,
  Config,
  DEFAULT_INSTANCE_LIMITS,
  DEFAULT_MODULE_LIMITS,
  Engine,
  Global,
  InstanceAllocationStrategy,
  Module,
  type PoolingOptions,
  WasmpoolError,
} from "../mod.ts";
import { buildModule } from "./fixtures/wasm_builder.ts";

/** Asserts `f` throws an ArgumentError whose message names `key` of `owner`. */
function refuses(f: () => unknown, key: string, owner: string, suggestion?: string): void {
  assert.throws(f, (error: unknown) => {
    assert.ok(error instanceof ArgumentError, `expected ArgumentError, got ${error}`);
    assert.ok(error instanceof WasmpoolError);
    const prefix = `unknown option ${JSON.stringify(key)} of ${owner}; `;
    assert.ok(error.message.startsWith(prefix), `"${error.message}" does not name ${key}`);
    if (suggestion !== undefined) {
      assert.match(error.message, new RegExp(`did you mean "${suggestion}"\\? known: .*`));
    }
    return true;
  });
}

/** Every documented pooling option, each set to a value other than its default. */
const EVERY_POOLING_OPTION: Required<PoolingOptions> = {
  strategy: "random",
  moduleLimits: { ...DEFAULT_MODULE_LIMITS },
  instanceLimits: { count: 2, memoryReservationSize: 1 << 24 },
  uffd: false,
  stackSize: 65536,
  seed: 3,
  memoryKeepResident: 0,
  maxUnusedWarmSlots: 1,
  recycleInstances: false,
  backgroundResets: true,
  maxInstanceReuse: 5,
  idleInstanceTimeoutMs: 250,
  recycleGrownMemoryPages: 16,
};

describe("unknown option names", () => {
  const pooling = (options: unknown) => () =>
    InstanceAllocationStrategy.pooling(options as PoolingOptions);

  it("pooling(): a misspelt option", () => {
    refuses(pooling({ moduleLimit: { memories: 2 } }), "moduleLimit", "pooling()", "moduleLimits");
    refuses(
      pooling({ recycleInstance: false }),
      "recycleInstance",
      "pooling()",
      "recycleInstances",
    );
    refuses(pooling({ UFFD: true }), "UFFD", "pooling()", "uffd");
    refuses(pooling({ nothingLikeIt: 1 }), "nothingLikeIt", "pooling()");
    // Undefined is still a name the caller meant for something.
    refuses(pooling({ stacksize: undefined }), "stacksize", "pooling()", "stackSize");
  });

  it("pooling(): a misspelt module or instance limit", () => {
    refuses(
      pooling({ instanceLimits: { cout: 5 } }),
      "cout",
      "instanceLimits in pooling()",
      "count",
    );
    refuses(
      pooling({ moduleLimits: { memoryPage: 5 } }),
      "memoryPage",
      "moduleLimits in pooling()",
      "memoryPages",
    );
  });

  it("withInterruption(), instantiate(), new Global(): a misspelt option", () => {
    refuses(
      () => new Config().withInterruption({ tickMS: 1 } as never),
      "tickMS",
      "withInterruption()",
      "tickMs",
    );
    refuses(
      () => new Global({ type: "i32", mutible: true } as never, 1),
      "mutible",
      "new Global()",
      "mutable",
    );
    using engine = new Engine(new Config().withInterruption().withFuel());
    const module = new Module(engine, buildModule({}));
    refuses(
      () => engine.instantiate(module, {}, { deadlinems: 5 } as never),
      "deadlinems",
      "instantiate()",
      "deadlineMs",
    );
    refuses(
      () => engine.instantiate(module, {}, { Fuel: 5 } as never),
      "Fuel",
      "instantiate()",
      "fuel",
    );
    assert.equal(engine.stats().runningInstances, 0);
  });

  it("Engine.attach(): a field a handle does not have", () => {
    using engine = new Engine();
    refuses(() => Engine.attach({ ...engine.handle(), ids: 1 } as never), "ids", "Engine.attach()");
  });

  it("an options argument that is not an object", () => {
    assert.throws(pooling(5), {
      name: "ArgumentError",
      message: /options of pooling\(\) must be an object, got 5/,
    });
    assert.throws(pooling(null), ArgumentError);
  });
});

describe("every documented option is still accepted", () => {
  it("pooling() with every option, every module limit and every instance limit", () => {
    assert.deepEqual(
      Object.keys(EVERY_POOLING_OPTION.instanceLimits).sort(),
      Object.keys(DEFAULT_INSTANCE_LIMITS).sort(),
    );
    const strategy = InstanceAllocationStrategy.pooling(EVERY_POOLING_OPTION);
    assert.equal(strategy.pooling?.strategy, "random");
    assert.equal(strategy.pooling?.recycleInstances, false);
    assert.equal(strategy.pooling?.maxUnusedWarmSlots, 1);
    assert.equal(InstanceAllocationStrategy.pooling({}).kind, "pooling");
    assert.equal(InstanceAllocationStrategy.pooling().kind, "pooling");
  });

  it("withInterruption(), instantiate(), new Global() and Engine.attach() with theirs", () => {
    const config = new Config().withInterruption({ tickMs: 2 }).withFuel();
    assert.equal(config.interruption?.tickMs, 2);
    assert.equal(new Global({ type: "i32", mutable: true }, 7).value, 7);
    using engine = new Engine(config);
    const module = new Module(engine, buildModule({}));
    using instance = engine.instantiate(module, {}, { deadlineMs: 50, fuel: 1000 });
    assert.equal(instance.fuelConsumed, 0);
    using attached = Engine.attach(engine.handle());
    assert.equal(attached.config.interruption?.tickMs, 2);
  });

  it("a pooled engine's handle attaches: its settings are pooling options", () => {
    using engine = new Engine(
      new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling(EVERY_POOLING_OPTION)),
    );
    using attached = Engine.attach(engine.handle());
    assert.deepEqual(
      attached.config.allocationStrategy.pooling,
      engine.config.allocationStrategy.pooling,
    );
  });
});
