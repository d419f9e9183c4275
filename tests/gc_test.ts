// An instance that is garbage-collected without dispose() gives its slot back, unless one of
// its memories or tables is still reachable.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Config, Engine, InstanceAllocationStrategy, type Memory, Module } from "../mod.ts";
import { collect, collectUntil } from "./fixtures/gc.ts";
import { buildModule } from "./fixtures/wasm_builder.ts";

function engineWith(count: number): Engine {
  return new Engine(new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling({
    moduleLimits: { memoryPages: 1 },
    instanceLimits: { count, memoryReservationSize: 65536 },
  })));
}

const bytes = buildModule({ memories: [{ min: 1, max: 1, shared: false }] });

describe("garbage collection", () => {
  it("gives back the slots of instances dropped without dispose()", async () => {
    using engine = engineWith(4);
    const module = new Module(engine, bytes);
    (() => {
      for (let i = 0; i < 4; i++) {
        new Uint8Array(engine.allocate(module).memories[0].buffer)[0] = 1;
      }
    })();
    assert.equal(engine.stats().liveInstances, 4);
    assert.ok(await collectUntil(() => engine.stats().liveInstances === 0), "slots not returned");
    // The returned slots are clean.
    using again = engine.allocate(module);
    assert.equal(new Uint8Array(again.memories[0].buffer)[0], 0);
  });

  it("keeps the slot while a memory of the instance is reachable", async () => {
    using engine = engineWith(2);
    const module = new Module(engine, bytes);
    // Held in an object, not a local, so that dropping it leaves no stale reference on the
    // stack for a conservative collector (Bun's) to find.
    const holder: { memory: Memory | null } = { memory: null };
    (() => {
      holder.memory = engine.allocate(module).memories[0];
      new Uint8Array(holder.memory.buffer)[0] = 7;
    })();
    // Collect a few times: the instance object is gone, but its memory holds the slot.
    for (let i = 0; i < 5; i++) {
      collect();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(engine.stats().liveInstances, 1);
    assert.equal(new Uint8Array(holder.memory!.buffer)[0], 7);
    holder.memory = null;
    assert.ok(await collectUntil(() => engine.stats().liveInstances === 0), "slot not returned");
  });

  it("with instance finalization off, a dropped instance keeps its slot until close()", async () => {
    const engine = new Engine(
      new Config().withInstanceFinalization(false).withAllocationStrategy(
        InstanceAllocationStrategy.pooling({
          moduleLimits: { memoryPages: 1 },
          instanceLimits: { count: 2, memoryReservationSize: 65536 },
        }),
      ),
    );
    const module = new Module(engine, bytes);
    (() => void engine.allocate(module))();
    for (let i = 0; i < 5; i++) {
      collect();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(engine.stats().liveInstances, 1);
    engine.close();
  });
});
