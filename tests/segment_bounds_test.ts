// A data or element segment that does not fit its memory or table: `engine.allocate` and
// `engine.instantiate` both throw OutOfBoundsError (instantiate with the runtime's own
// RuntimeError as its cause), pooled, recycled or on demand, and leave nothing allocated.
// Differential: the same bytes through `new WebAssembly.Instance` throw the runtime's error.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Config,
  Engine,
  InstanceAllocationStrategy,
  InstantiationError,
  Module,
  OutOfBoundsError,
  WasmpoolError,
} from "../mod.ts";
import { buildModule, type ModuleSpec } from "./fixtures/wasm_builder.ts";

const PAGE = 65536;
const COUNT = 2;

const STRATEGIES = {
  "pooling, recycled": () =>
    InstanceAllocationStrategy.pooling({
      instanceLimits: { count: COUNT },
      moduleLimits: { importedGlobals: 1 },
    }),
  "pooling, not recycled": () =>
    InstanceAllocationStrategy.pooling({
      instanceLimits: { count: COUNT },
      moduleLimits: { importedGlobals: 1 },
      recycleInstances: false,
    }),
  "on demand": () => InstanceAllocationStrategy.onDemand(),
} as const;
type Kind = keyof typeof STRATEGIES;

function engineFor(kind: Kind): Engine {
  return new Engine(new Config().withAllocationStrategy(STRATEGIES[kind]()));
}

/** 3 bytes at offset 65535 of a 1-page memory. */
const DATA_PAST_END: ModuleSpec = {
  memories: [{ min: 1, max: 2, shared: false }],
  data: [{ mode: "active", offset: { kind: "i32.const", value: PAGE - 1 }, data: bytes(3) }],
};

/** 2 elements at offset 1 of a table of 2, after a segment that fits. */
const ELEMENTS_PAST_END: ModuleSpec = {
  types: [{ params: [], results: [] }],
  functions: [0],
  tables: [{ element: "funcref", min: 2, max: 2 }],
  elements: [
    { mode: "active", offset: { kind: "i32.const", value: 0 }, elements: [0] },
    { mode: "active", offset: { kind: "i32.const", value: 1 }, elements: [0, 0] },
  ],
};

/** 3 bytes at an imported global's offset, in a 1-page memory. */
const DATA_AT_GLOBAL: ModuleSpec = {
  imports: [{
    module: "env",
    name: "at",
    desc: { kind: "global", type: { type: "i32", mutable: false } },
  }],
  memories: [{ min: 1, max: 2, shared: false }],
  data: [{ mode: "active", offset: { kind: "global.get", index: 0 }, data: bytes(3) }],
};

/** What fits: a memory and a table, nothing in them. */
const CLEAN: ModuleSpec = {
  memories: [{ min: 1, max: 2, shared: false }],
  tables: [{ element: "funcref", min: 2, max: 2 }],
};

function bytes(n: number): Uint8Array {
  return new Uint8Array(n).fill(7);
}

/** The runtime's own error for `spec`'s module with `imports`. */
function referenceError(spec: ModuleSpec, imports?: WebAssembly.Imports): unknown {
  try {
    new WebAssembly.Instance(new WebAssembly.Module(buildModule(spec)), imports);
  } catch (error) {
    return error;
  }
  assert.fail("the runtime instantiated a module whose segment does not fit");
}

/** Asserts `f` throws OutOfBoundsError matching `message`, caused by a RuntimeError or not. */
function throwsOutOfBounds(f: () => unknown, message: RegExp, caused: boolean): void {
  assert.throws(f, (error: unknown) => {
    assert.ok(error instanceof OutOfBoundsError, `expected OutOfBoundsError, got ${error}`);
    assert.ok(error instanceof InstantiationError);
    assert.ok(error instanceof WasmpoolError);
    assert.match(error.message, message);
    if (caused) {
      assert.ok(error.cause instanceof WebAssembly.RuntimeError, `cause: ${error.cause}`);
    }
    return true;
  });
}

/** Asserts nothing is left: no instance alive, and every slot takes a new instance. */
function nothingLeft(engine: Engine): void {
  const stats = engine.stats();
  assert.equal(stats.liveInstances, 0);
  assert.equal(stats.runningInstances, 0);
  const clean = new Module(engine, buildModule(CLEAN));
  for (const make of [() => engine.instantiate(clean), () => engine.allocate(clean)]) {
    const instances = [];
    for (let i = 0; i < COUNT; i++) instances.push(make());
    for (const instance of instances) instance.dispose();
  }
  assert.equal(engine.stats().liveInstances, 0);
}

const DATA_MESSAGE =
  /^memory out of bounds: data segment does not fit \(data segment 0 of 3 bytes at offset 65535 in memory 0 of 65536 bytes\)$/;
const ELEMENTS_MESSAGE =
  /^table out of bounds: elements segment does not fit \(element segment 1 of 2 elements at offset 1 in table 0 of 2 elements\)$/;

for (const kind of Object.keys(STRATEGIES) as Kind[]) {
  describe(`a segment out of bounds (${kind})`, () => {
    it("a data segment: OutOfBoundsError from allocate and instantiate, nothing left", () => {
      assert.ok(referenceError(DATA_PAST_END) instanceof WebAssembly.RuntimeError);
      using engine = engineFor(kind);
      const module = new Module(engine, buildModule(DATA_PAST_END));
      for (let i = 0; i < COUNT + 1; i++) {
        throwsOutOfBounds(() => engine.allocate(module), /^memory out of bounds/, false);
        throwsOutOfBounds(() => engine.instantiate(module), DATA_MESSAGE, true);
      }
      nothingLeft(engine);
    });

    it("an element segment: OutOfBoundsError from allocate and instantiate, nothing left", () => {
      assert.ok(referenceError(ELEMENTS_PAST_END) instanceof WebAssembly.RuntimeError);
      using engine = engineFor(kind);
      const module = new Module(engine, buildModule(ELEMENTS_PAST_END));
      if (kind === "pooling, recycled") {
        assert.equal(module.notRecyclable, null, "the recycled path is the one under test");
        throwsOutOfBounds(() => engine.warm(module, 1), ELEMENTS_MESSAGE, true);
        assert.equal(engine.stats().warmIdle, 0);
      }
      for (let i = 0; i < COUNT + 1; i++) {
        throwsOutOfBounds(() => engine.allocate(module), /^table out of bounds/, false);
        throwsOutOfBounds(() => engine.instantiate(module), ELEMENTS_MESSAGE, true);
      }
      nothingLeft(engine);
    });

    it("a data segment at an imported global's offset: out of bounds only where it is", () => {
      const past = { env: { at: PAGE - 1 } };
      assert.ok(referenceError(DATA_AT_GLOBAL, past) instanceof WebAssembly.RuntimeError);
      using engine = engineFor(kind);
      const module = new Module(engine, buildModule(DATA_AT_GLOBAL));
      throwsOutOfBounds(() => engine.instantiate(module, past), DATA_MESSAGE, true);
      const global = new WebAssembly.Global({ value: "i32", mutable: false }, PAGE - 1);
      throwsOutOfBounds(
        () => engine.instantiate(module, { env: { at: global } }),
        DATA_MESSAGE,
        true,
      );
      using fits = engine.instantiate(module, { env: { at: PAGE - 3 } });
      assert.equal(fits.disposed, false);
      fits.dispose();
      nothingLeft(engine);
    });

    it("a trapping start function still throws the runtime's own RuntimeError", () => {
      using engine = engineFor(kind);
      const module = new Module(
        engine,
        buildModule({
          types: [{ params: [], results: [] }],
          functions: [0],
          memories: [{ min: 1, max: 1, shared: false }],
          start: 0,
          bodies: [{ code: [0x00] }], // unreachable
        }),
      );
      assert.throws(() => engine.instantiate(module), (error: unknown) => {
        assert.ok(error instanceof WebAssembly.RuntimeError, `got ${error}`);
        assert.ok(!(error instanceof WasmpoolError));
        return true;
      });
      nothingLeft(engine);
    });
  });
}

describe("a segment out of bounds in an imported memory (on demand)", () => {
  const spec: ModuleSpec = {
    imports: [{
      module: "env",
      name: "memory",
      desc: { kind: "memory", type: { min: 1, max: null, shared: false } },
    }],
    data: [{ mode: "active", offset: { kind: "i32.const", value: PAGE + 1 }, data: bytes(3) }],
  };

  it("is measured against the memory passed in", () => {
    using engine = engineFor("on demand");
    const module = new Module(engine, buildModule(spec));
    const small = new WebAssembly.Memory({ initial: 1 });
    assert.ok(
      referenceError(spec, { env: { memory: small } }) instanceof WebAssembly.RuntimeError,
    );
    throwsOutOfBounds(
      () => engine.instantiate(module, { env: { memory: small } }),
      /data segment 0 of 3 bytes at offset 65537 in memory 0 of 65536 bytes/,
      true,
    );
    const large = new WebAssembly.Memory({ initial: 2 });
    using fits = engine.instantiate(module, { env: { memory: large } });
    assert.deepEqual([...new Uint8Array(large.buffer, PAGE + 1, 3)], [7, 7, 7]);
    fits.dispose();
    assert.equal(engine.stats().runningInstances, 0);
  });
});
