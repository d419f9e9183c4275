// The seed's pooling allocator suite (Wasmtime's tests/all/pooling_allocator.rs at PR #2518),
// expressed through wasmpool's API, for both slot-picking strategies.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Config,
  Engine,
  InstanceAllocationStrategy,
  LimitError,
  Module,
  PoolExhaustedError,
  type PoolingOptions,
  Table,
} from "../mod.ts";
import { buildModule } from "./fixtures/wasm_builder.ts";

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

function pooled(options: PoolingOptions): Engine {
  return new Engine(
    new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling(options)),
  );
}

const memoryModule = (min: number, max: number | null = null): Uint8Array =>
  buildModule({
    memories: [{ min, max, shared: false }],
    exports: [{ name: "m", kind: "memory", index: 0 }],
  });

// Keep-resident resets (the default, 64 KiB) zero touched pages in place; 0 drops them all.
const modes = [
  { strategy: "next-available", uffd: false, memoryKeepResident: undefined },
  { strategy: "random", uffd: false, memoryKeepResident: undefined },
  { strategy: "next-available", uffd: false, memoryKeepResident: 0 },
  { strategy: "next-available", uffd: false, memoryKeepResident: 4096 },
  { strategy: "next-available", uffd: true, memoryKeepResident: undefined },
] as const;

for (const { strategy, uffd, memoryKeepResident } of modes) {
  const label = `${strategy}${uffd ? ", uffd" : ""}${
    memoryKeepResident === undefined ? "" : `, keep resident ${memoryKeepResident}`
  }`;
  describe(`pooling allocator (${label})`, () => {
    it("successful instantiation", () => {
      using engine = pooled({
        strategy,
        uffd,
        memoryKeepResident,
        moduleLimits: { memoryPages: 1, tableElements: 10 },
        instanceLimits: { count: 1, memoryReservationSize: 1 },
      });
      const module = new Module(
        engine,
        buildModule({
          memories: [{ min: 1, max: null, shared: false }],
          tables: [{ element: "funcref", min: 10, max: null }],
        }),
      );
      using instance = engine.allocate(module);
      assert.equal(instance.memories[0].pages, 1);
      assert.equal(instance.tables[0].size, 10);
    });

    it("memory limit", () => {
      using engine = pooled({
        strategy,
        uffd,
        memoryKeepResident,
        moduleLimits: { memoryPages: 3, tableElements: 10 },
        instanceLimits: { count: 1, memoryReservationSize: 196608 },
      });
      assert.throws(() => new Module(engine, memoryModule(4)), {
        name: "LimitError",
        message: "memory index 0 has a minimum page size of 4 which exceeds the limit of 3",
        details: { limit: "memoryPages", value: 4, maximum: 3 },
      });
      const module = new Module(engine, memoryModule(0));
      for (let round = 0; round < 2; round++) {
        using instance = engine.allocate(module);
        const memory = instance.exports["m"];
        assert.ok(memory === instance.memories[0]);
        assert.equal(instance.memories[0].pages, 0);
        for (let pages = 0; pages < 3; pages++) {
          assert.equal(instance.memories[0].grow(1), pages);
          assert.equal(instance.memories[0].pages, pages + 1);
        }
        assert.throws(() => instance.memories[0].grow(1), LimitError);
        assert.equal(instance.memories[0].pages, 3);
      }
    });

    it("memory init", () => {
      using engine = pooled({
        strategy,
        uffd,
        memoryKeepResident,
        moduleLimits: { memoryPages: 2, tableElements: 0 },
        instanceLimits: { count: 1 },
      });
      const module = new Module(
        engine,
        buildModule({
          memories: [{ min: 2, max: null, shared: false }],
          exports: [{ name: "m", kind: "memory", index: 0 }],
          data: [
            {
              mode: "active",
              offset: { kind: "i32.const", value: 65530 },
              data: text("this data spans multiple pages"),
            },
            { mode: "active", offset: { kind: "i32.const", value: 10 }, data: text("hello world") },
          ],
        }),
      );
      using instance = engine.allocate(module);
      const bytes = new Uint8Array(instance.memories[0].buffer);
      assert.deepEqual(bytes.subarray(65530, 65560), text("this data spans multiple pages"));
      assert.deepEqual(bytes.subarray(10, 21), text("hello world"));
    });

    it("memory guard pages: buffer covers exactly the accessible bytes, grow stops at the limit", () => {
      // The trap itself (a native access past byteLength kills the process) is in
      // guard_trap_test.ts, in a child process.
      using engine = pooled({
        strategy,
        uffd,
        memoryKeepResident,
        moduleLimits: { memoryPages: 2, tableElements: 0 },
        instanceLimits: { count: 1 },
      });
      const module = new Module(engine, memoryModule(0));
      for (let i = 0; i < 10; i++) {
        using instance = engine.allocate(module);
        const memory = instance.memories[0];
        assert.equal(memory.buffer.byteLength, 0);
        memory.grow(1);
        assert.equal(memory.buffer.byteLength, 65536);
        memory.grow(1);
        assert.equal(memory.buffer.byteLength, 131072);
        new Uint8Array(memory.buffer)[131071] = 1;
        assert.throws(() => memory.grow(1), LimitError);
      }
    });

    it("memory zeroed", () => {
      using engine = pooled({
        strategy,
        uffd,
        memoryKeepResident,
        moduleLimits: { memoryPages: 1, tableElements: 0 },
        instanceLimits: { count: 1, memoryReservationSize: 1 },
      });
      const module = new Module(engine, memoryModule(1));
      for (let i = 0; i < 10; i++) {
        using instance = engine.allocate(module);
        const memory = instance.memories[0];
        assert.equal(memory.pages, 1);
        assert.equal(memory.byteLength, 65536);
        const words = new BigUint64Array(memory.buffer);
        assert.equal(words.length, 8192);
        assert.ok(words.every((w) => w === 0n), `instance ${i} sees a previous tenant's bytes`);
        new Uint8Array(memory.buffer).fill(0xfe);
      }
    });

    it("table limit", () => {
      const tableElements = 10;
      using engine = pooled({
        strategy,
        uffd,
        memoryKeepResident,
        moduleLimits: { memoryPages: 1, tableElements },
        instanceLimits: { count: 1, memoryReservationSize: 1 },
      });
      assert.throws(
        () =>
          new Module(
            engine,
            buildModule({ tables: [{ element: "funcref", min: 31, max: null }] }),
          ),
        {
          name: "LimitError",
          message: "table index 0 has a minimum element size of 31 which exceeds the limit of 10",
        },
      );
      const module = new Module(
        engine,
        buildModule({
          tables: [{ element: "funcref", min: 0, max: null }],
          exports: [{ name: "t", kind: "table", index: 0 }],
        }),
      );
      for (let round = 0; round < 2; round++) {
        using instance = engine.allocate(module);
        const table = instance.exports["t"];
        assert.ok(table instanceof Table);
        for (let i = 0; i < tableElements; i++) {
          assert.equal(table.size, i);
          assert.equal(table.grow(1, null), i);
        }
        assert.equal(table.size, tableElements);
        assert.throws(() => table.grow(1, null), LimitError);
      }
    });

    it("table init", () => {
      using engine = pooled({
        strategy,
        uffd,
        memoryKeepResident,
        moduleLimits: { memoryPages: 0, tableElements: 6 },
        instanceLimits: { count: 1 },
      });
      const i32 = "i32" as const;
      const module = new Module(
        engine,
        buildModule({
          types: [0, 1, 2, 3, 4].map((n) => ({ params: new Array(n).fill(i32), results: [] })),
          functions: [0, 1, 2, 3, 4],
          tables: [{ element: "funcref", min: 6, max: null }],
          exports: [{ name: "t", kind: "table", index: 0 }],
          elements: [
            { mode: "active", offset: { kind: "i32.const", value: 1 }, elements: [1, 2, 3, 4] },
            { mode: "active", offset: { kind: "i32.const", value: 0 }, elements: [0] },
          ],
        }),
      );
      using instance = engine.allocate(module);
      const table = instance.tables[0];
      // Entry i is function i (the seed test checks it by the function's i parameters).
      for (let i = 0; i < 5; i++) assert.equal(table.get(i), i);
      assert.equal(table.get(5), null);
    });

    it("table zeroed", () => {
      using engine = pooled({
        strategy,
        uffd,
        memoryKeepResident,
        moduleLimits: { memoryPages: 1, tableElements: 10 },
        instanceLimits: { count: 1, memoryReservationSize: 1 },
      });
      const module = new Module(
        engine,
        buildModule({
          types: [{ params: [], results: [] }],
          functions: [0],
          tables: [{ element: "funcref", min: 10, max: null }],
        }),
      );
      for (let round = 0; round < 10; round++) {
        using instance = engine.allocate(module);
        const table = instance.tables[0];
        assert.equal(table.size, 10);
        for (let i = 0; i < 10; i++) {
          assert.equal(table.get(i), null, `round ${round} sees a previous tenant's entry ${i}`);
          table.set(i, 0);
        }
      }
    });

    it("instantiation limit", () => {
      const limit = 10;
      using engine = pooled({
        strategy,
        uffd,
        memoryKeepResident,
        moduleLimits: { memoryPages: 1, tableElements: 10 },
        instanceLimits: { count: limit, memoryReservationSize: 1 },
      });
      const module = new Module(engine, buildModule({}));
      for (let round = 0; round < 2; round++) {
        const instances = Array.from({ length: limit }, () => engine.allocate(module));
        assert.throws(() => engine.allocate(module), (error: unknown) => {
          assert.ok(error instanceof PoolExhaustedError);
          assert.equal(error.message, `Limit of ${limit} concurrent instances has been reached`);
          return true;
        });
        assert.equal(engine.stats().liveInstances, limit);
        for (const instance of instances) instance.dispose();
        assert.equal(engine.stats().liveInstances, 0);
      }
    });
  });
}

describe("pooling configuration", () => {
  const make = (options: PoolingOptions) => () => InstanceAllocationStrategy.pooling(options);

  it("refuses a zero instance count", () => {
    assert.throws(make({ instanceLimits: { count: 0 } }), {
      name: "LimitError",
      message: "the instance count limit cannot be zero",
    });
  });

  it("refuses more than 65536 memory pages", () => {
    assert.throws(make({ moduleLimits: { memoryPages: 0x10001 } }), {
      name: "LimitError",
      message: "module memory page limit of 65537 exceeds the maximum of 65536",
    });
  });

  it("refuses memory pages beyond the reservation", () => {
    assert.throws(
      make({ moduleLimits: { memoryPages: 2 }, instanceLimits: { memoryReservationSize: 65536 } }),
      {
        name: "LimitError",
        message:
          "module memory page limit of 2 pages exceeds the memory reservation size limit of 65536 bytes",
      },
    );
  });

  it("names the value of a limit that is not a count", () => {
    assert.throws(make({ instanceLimits: { count: -3 } }), {
      name: "LimitError",
      message: "instanceLimits.count must be a whole number from 1 to 4294967295, got -3",
    });
    assert.throws(make({ moduleLimits: { memories: 1.5 } }), /moduleLimits.memories .* got 1.5/);
  });

  it("checks every module count limit with Wasmtime's message", () => {
    using engine = pooled({
      moduleLimits: { types: 1, functions: 1, globals: 1, importedFunctions: 1 },
      instanceLimits: { count: 1, memoryReservationSize: 1 << 24 },
    });
    const fn = { params: [], results: [] };
    const cases: [Parameters<typeof buildModule>[0], string][] = [
      [{ types: [fn, fn] }, "defined types count of 2 exceeds the limit of 1"],
      [{ types: [fn], functions: [0, 0] }, "defined functions count of 2 exceeds the limit of 1"],
      [
        {
          types: [fn],
          imports: [0, 1].map((i) => ({
            module: "env",
            name: `f${i}`,
            desc: { kind: "function", type: 0 } as const,
          })),
        },
        "imported function count of 2 exceeds the limit of 1",
      ],
      [
        {
          imports: [{
            module: "env",
            name: "m",
            desc: { kind: "memory", type: { min: 0, max: null, shared: false } },
          }],
        },
        "imported memories count of 1 exceeds the limit of 0",
      ],
      [
        {
          memories: [{ min: 0, max: null, shared: false }, { min: 0, max: null, shared: false }],
        },
        "defined memories count of 2 exceeds the limit of 1",
      ],
      [
        {
          globals: [0, 1].map(() => ({
            type: { type: "i32", mutable: false } as const,
            init: { kind: "i32.const", value: 0 } as const,
          })),
        },
        "defined globals count of 2 exceeds the limit of 1",
      ],
    ];
    for (const [spec, message] of cases) {
      assert.throws(() => new Module(engine, buildModule(spec)), (error: unknown) => {
        assert.ok(error instanceof LimitError);
        assert.equal(error.message, message);
        // The details name the limit and carry the numbers of the message.
        const [value, maximum] = message.match(/\d+/g)!.map(Number);
        assert.deepEqual([error.details?.value, error.details?.maximum], [value, maximum]);
        return true;
      });
    }
  });

  it("random strategy spreads instances over the slots", () => {
    using engine = pooled({
      strategy: "random",
      seed: 7,
      moduleLimits: { memoryPages: 1 },
      instanceLimits: { count: 16, memoryReservationSize: 65536 },
    });
    const module = new Module(engine, memoryModule(1));
    const addresses = new Set<bigint>();
    for (let i = 0; i < 200; i++) {
      using instance = engine.allocate(module);
      addresses.add(instance.memories[0].address);
    }
    assert.ok(addresses.size > 8, `random reused only ${addresses.size} of 16 slots`);
  });

  it("next-available reuses the most recently freed slot", () => {
    using engine = pooled({
      moduleLimits: { memoryPages: 1 },
      instanceLimits: { count: 4, memoryReservationSize: 65536 },
    });
    const module = new Module(engine, memoryModule(1));
    const a = engine.allocate(module);
    const b = engine.allocate(module);
    const addressA = a.memories[0].address;
    assert.equal(b.memories[0].address - addressA, 65536n);
    a.dispose();
    using c = engine.allocate(module);
    assert.equal(c.memories[0].address, addressA);
    b.dispose();
  });
});
