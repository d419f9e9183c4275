/**
 * The life of an instance, under both allocation strategies where it makes sense: slot reuse,
 * failed instantiations, buffer detachment, use after disposal, imports shared between
 * instances, malformed modules, globals and the engine's counters. Runs unchanged under
 * `deno test` and `bun test`.
 *
 * @module
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  ArgumentError,
  Config,
  DisposedError,
  Engine,
  Global,
  type Imports,
  InstanceAllocationStrategy,
  type InstanceHandle,
  InstantiationError,
  LimitError,
  LinkError,
  MalformedModuleError,
  Memory,
  Module,
  type ModuleLimits,
  OutOfBoundsError,
  PoolExhaustedError,
  Table,
  UnsupportedFeatureError,
  WasmpoolError,
} from "../mod.ts";
import { buildModule, HEADER, type ModuleSpec } from "./fixtures/wasm_builder.ts";
import { readRealModule, realModules } from "./fixtures/npm_modules.ts";
import { allZero } from "./fixtures/same_bytes.ts";

const PAGE = 65536;
const MEMORY_PAGES = 16;
const TABLE_ELEMENTS = 64;

type Kind = "pooling" | "pooling-uffd" | "on-demand";
const KINDS: readonly Kind[] = ["pooling", "pooling-uffd", "on-demand"];

interface EngineOptions {
  readonly count?: number;
  readonly moduleLimits?: Partial<ModuleLimits>;
}

/** A small engine: a pool of `count` slots of 16 pages and 64 table elements, or on demand. */
function makeEngine(kind: Kind, options: EngineOptions = {}): Engine {
  const strategy = kind === "on-demand"
    ? InstanceAllocationStrategy.onDemand()
    : InstanceAllocationStrategy.pooling({
      uffd: kind === "pooling-uffd",
      instanceLimits: { count: options.count ?? 4, memoryReservationSize: MEMORY_PAGES * PAGE },
      moduleLimits: {
        memoryPages: MEMORY_PAGES,
        tableElements: TABLE_ELEMENTS,
        ...options.moduleLimits,
      },
    });
  return new Engine(new Config().withAllocationStrategy(strategy));
}

/** Module limits that let a module import one memory, one table and a few globals. */
const IMPORTING: Partial<ModuleLimits> = {
  importedMemories: 1,
  importedTables: 1,
  importedGlobals: 4,
};

function compile(engine: Engine, spec: ModuleSpec): Module {
  return new Module(engine, buildModule(spec));
}

function memoryModule(min: number, max: number | null = null): ModuleSpec {
  return {
    memories: [{ min, max, shared: false }],
    exports: [{ name: "memory", kind: "memory", index: 0 }],
  };
}

function bytesOf(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

function entries(table: Table): (number | null)[] {
  const out: (number | null)[] = [];
  for (let i = 0; i < table.size; i++) out.push(table.get(i));
  return out;
}

function isError(cls: new (...args: never[]) => Error, message?: RegExp | string) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    assert.ok(e instanceof WasmpoolError, `${String(e)} is not a WasmpoolError`);
    if (typeof message === "string") {
      assert.ok(e.message.startsWith(message), `"${e.message}" does not start with "${message}"`);
    } else if (message !== undefined) {
      assert.match(e.message, message);
    }
    return true;
  };
}

function counters(engine: Engine): [number, number, number] {
  const s = engine.stats();
  return [s.instantiations, s.deallocations, s.liveInstances];
}

describe("slot reuse", () => {
  it("pooling: a reused slot shrinks back to the new module's size and reads zeros", () => {
    using engine = makeEngine("pooling", { count: 1 });
    const a = compile(engine, memoryModule(4));
    const b = compile(engine, memoryModule(1));

    const first = engine.allocate(a);
    const memoryA = first.memories[0];
    const address = memoryA.address;
    assert.equal(memoryA.pages, 4);
    assert.equal(memoryA.grow(3), 4);
    assert.equal(memoryA.pages, 7);
    new Uint8Array(memoryA.buffer).fill(0x5a);
    first.dispose();

    using second = engine.allocate(b);
    const memoryB = second.memories[0];
    assert.equal(memoryB.address, address, "count: 1, so the same slot");
    assert.equal(memoryB.pages, 1);
    assert.equal(memoryB.byteLength, PAGE);
    assert.equal(memoryB.buffer.byteLength, PAGE);
    assert.ok(allZero(memoryB.buffer));
    // Growing into the pages the first tenant wrote shows zeros, not its bytes.
    assert.equal(memoryB.grow(6), 1);
    assert.equal(memoryB.buffer.byteLength, 7 * PAGE);
    assert.ok(allZero(memoryB.buffer), "the previous tenant's bytes are visible");
  });

  it("on-demand: a later, smaller instance has its own size", () => {
    using engine = makeEngine("on-demand");
    const first = engine.allocate(compile(engine, memoryModule(4)));
    first.memories[0].grow(3);
    new Uint8Array(first.memories[0].buffer).fill(0x5a);
    first.dispose();
    using second = engine.allocate(compile(engine, memoryModule(1)));
    assert.equal(second.memories[0].pages, 1);
    assert.equal(second.memories[0].buffer.byteLength, PAGE);
    assert.equal(second.memories[0].grow(6), 1);
    assert.ok(allZero(second.memories[0].buffer));
  });
});

describe("failed instantiation leaves its slot clean", () => {
  const page = new Uint8Array(4096).fill(0xee);
  const dataOutOfBounds: ModuleSpec = {
    memories: [{ min: 1, max: null, shared: false }],
    data: [
      { mode: "active", offset: { kind: "i32.const", value: 0 }, data: page },
      { mode: "active", offset: { kind: "i32.const", value: 60000 }, data: page.subarray(0, 5000) },
      { mode: "active", offset: { kind: "i32.const", value: PAGE - 2 }, data: bytesOf(1, 2, 3) },
    ],
  };
  const elemOutOfBounds: ModuleSpec = {
    types: [{ params: [], results: [] }],
    functions: [0, 0, 0],
    tables: [{ element: "funcref", min: 8, max: null }],
    elements: [
      { mode: "active", offset: { kind: "i32.const", value: 0 }, elements: [2, 1, 0, 2, 1] },
      { mode: "active", offset: { kind: "i32.const", value: 6 }, elements: [0, 1, 2] },
    ],
  };
  // Element segments are applied before data segments: the table is written, then this fails.
  const dataAfterElements: ModuleSpec = {
    ...elemOutOfBounds,
    memories: [{ min: 1, max: null, shared: false }],
    elements: [elemOutOfBounds.elements![0]],
    data: dataOutOfBounds.data,
  };
  const clean: ModuleSpec = {
    tables: [{ element: "funcref", min: 8, max: null }],
    memories: [{ min: 1, max: null, shared: false }],
  };

  for (const kind of KINDS) {
    describe(kind, () => {
      it("a data segment out of bounds, after one that wrote bytes", () => {
        using engine = makeEngine(kind, { count: 1 });
        const module = compile(engine, dataOutOfBounds);
        assert.throws(
          () => engine.allocate(module),
          isError(OutOfBoundsError, "memory out of bounds: data segment does not fit"),
        );
        assert.deepEqual(counters(engine), [0, 0, 0]);
        using next = engine.allocate(compile(engine, clean));
        assert.equal(next.memories[0].pages, 1);
        assert.ok(allZero(next.memories[0].buffer), "the failed instance's bytes are visible");
        assert.deepEqual(counters(engine), [1, 0, 1]);
      });

      it("an element segment out of bounds, after one that wrote entries", () => {
        using engine = makeEngine(kind, { count: 1 });
        const module = compile(engine, elemOutOfBounds);
        assert.throws(
          () => engine.allocate(module),
          (e: unknown) => {
            isError(OutOfBoundsError, "table out of bounds")(e);
            return e instanceof InstantiationError;
          },
        );
        assert.deepEqual(counters(engine), [0, 0, 0]);
        using next = engine.allocate(compile(engine, clean));
        assert.deepEqual(entries(next.tables[0]), new Array(8).fill(null));
        assert.deepEqual(counters(engine), [1, 0, 1]);
      });

      it("a data segment out of bounds after element segments that wrote entries", () => {
        using engine = makeEngine(kind, { count: 1 });
        const module = compile(engine, dataAfterElements);
        assert.throws(
          () => engine.allocate(module),
          isError(OutOfBoundsError, "memory out of bounds: data segment does not fit"),
        );
        assert.equal(engine.stats().liveInstances, 0);
        using next = engine.allocate(compile(engine, clean));
        assert.deepEqual(entries(next.tables[0]), new Array(8).fill(null));
        assert.ok(allZero(next.memories[0].buffer));
      });

      it("the message names the segment, its size and offset, and the memory size", () => {
        using engine = makeEngine(kind);
        assert.throws(
          () => engine.allocate(compile(engine, dataOutOfBounds)),
          isError(OutOfBoundsError, /segment 2 of 3 bytes at offset 65534 .* of 65536 bytes/),
        );
      });
    });
  }
});

describe("buffers", () => {
  for (const kind of KINDS) {
    describe(kind, () => {
      it("the same ArrayBuffer is returned until something changes", () => {
        using engine = makeEngine(kind);
        using instance = engine.allocate(compile(engine, memoryModule(2, 4)));
        const memory = instance.memories[0];
        assert.equal(memory.buffer, memory.buffer);
        assert.equal(instance.exports.memory, memory);
        assert.equal(memory.buffer.byteLength, 2 * PAGE);
      });

      it("grow detaches the old buffer; the new one has the grown size and the old bytes", () => {
        using engine = makeEngine(kind);
        using instance = engine.allocate(compile(engine, memoryModule(1, 4)));
        const memory = instance.memories[0];
        const before = memory.buffer;
        const view = new Uint8Array(before);
        view[0] = 0x11;
        view[PAGE - 1] = 0x22;
        assert.equal(memory.grow(2), 1);
        assert.equal(before.byteLength, 0);
        assert.equal(view.length, 0);
        assert.equal(view[0], undefined);
        const after = memory.buffer;
        assert.notEqual(after, before);
        assert.equal(after.byteLength, 3 * PAGE);
        assert.equal(memory.pages, 3);
        assert.equal(memory.byteLength, 3 * PAGE);
        const grown = new Uint8Array(after);
        assert.equal(grown[0], 0x11);
        assert.equal(grown[PAGE - 1], 0x22);
        assert.equal(grown[3 * PAGE - 1], 0);
        grown[3 * PAGE - 1] = 0x33;
        assert.equal(memory.buffer, after);
      });

      it("a grow past the maximum throws LimitError and keeps the buffer", () => {
        using engine = makeEngine(kind);
        using instance = engine.allocate(compile(engine, memoryModule(1, 2)));
        const memory = instance.memories[0];
        const before = memory.buffer;
        assert.throws(() => memory.grow(2), isError(LimitError));
        assert.equal(before.byteLength, PAGE);
        assert.equal(memory.buffer, before);
        assert.equal(memory.pages, 1);
      });

      it("dispose detaches the buffer and its views", () => {
        using engine = makeEngine(kind);
        const instance = engine.allocate(compile(engine, memoryModule(1)));
        const buffer = instance.memories[0].buffer;
        const view = new Uint8Array(buffer);
        view[7] = 7;
        instance.dispose();
        assert.equal(buffer.byteLength, 0);
        assert.equal(view.length, 0);
        assert.equal(view[7], undefined);
      });

      it("dispose detaches the largest memory's buffer; the slot's next tenant gets its own", () => {
        using engine = makeEngine(kind, { count: 1 });
        const module = compile(engine, memoryModule(MEMORY_PAGES));
        const first = engine.allocate(module);
        const buffer = first.memories[0].buffer;
        const view = new Uint8Array(buffer);
        view[MEMORY_PAGES * PAGE - 1] = 0x5a;
        first.dispose();
        assert.equal(buffer.byteLength, 0);
        assert.equal(view.length, 0);
        using next = engine.allocate(module);
        const fresh = next.memories[0].buffer;
        assert.notEqual(fresh, buffer);
        assert.equal(fresh.byteLength, MEMORY_PAGES * PAGE);
        assert.equal(new Uint8Array(fresh)[MEMORY_PAGES * PAGE - 1], 0, "the first tenant's byte");
        assert.equal(buffer.byteLength, 0, "the old buffer stays detached");
      });
    });
  }
});

describe("use after dispose", () => {
  const spec: ModuleSpec = {
    ...memoryModule(1, 4),
    tables: [{ element: "funcref", min: 2, max: null }],
  };

  for (const kind of KINDS) {
    describe(kind, () => {
      it("throws DisposedError; dispose() twice is harmless", () => {
        using engine = makeEngine(kind);
        const instance = engine.allocate(compile(engine, spec));
        const memory = instance.memories[0];
        const table = instance.tables[0];
        assert.equal(instance.disposed, false);
        instance.dispose();
        assert.equal(instance.disposed, true);
        assert.throws(() => instance.memories, isError(DisposedError));
        assert.throws(() => instance.tables, isError(DisposedError));
        assert.throws(() => instance.exports, isError(DisposedError));
        assert.throws(() => memory.buffer, isError(DisposedError));
        assert.throws(() => memory.grow(1), isError(DisposedError));
        assert.throws(() => memory.pages, isError(DisposedError));
        assert.throws(() => table.get(0), isError(DisposedError));
        assert.throws(() => table.set(0, 1), isError(DisposedError));
        instance.dispose();
        instance[Symbol.dispose]();
        assert.deepEqual(counters(engine), [1, 1, 0]);
      });

      it("engine.close() disposes its instances and detaches their buffers", () => {
        const engine = makeEngine(kind);
        let closedEarly = false;
        try {
          const module = compile(engine, spec);
          const instances = [engine.allocate(module), engine.allocate(module)];
          const buffers = instances.map((i) => i.memories[0].buffer);
          const views = buffers.map((b) => new Uint8Array(b));
          const memory = instances[0].memories[0];
          const table = instances[1].tables[0];
          engine.close();
          closedEarly = true;
          assert.equal(engine.closed, true);
          for (const instance of instances) assert.equal(instance.disposed, true);
          for (const buffer of buffers) assert.equal(buffer.byteLength, 0);
          for (const view of views) assert.equal(view.length, 0);
          assert.throws(() => instances[0].memories, isError(DisposedError));
          assert.throws(() => memory.buffer, isError(DisposedError));
          assert.throws(() => memory.grow(1), isError(DisposedError));
          assert.throws(() => table.get(0), isError(DisposedError));
          assert.throws(() => engine.allocate(module), isError(DisposedError));
          assert.throws(() => new Module(engine, buildModule(spec)), isError(DisposedError));
          assert.throws(() => engine.stats(), isError(DisposedError));
          for (const instance of instances) instance.dispose();
          engine.close();
        } finally {
          if (!closedEarly) engine.close();
        }
      });
    });
  }
});

describe("imports across instances", () => {
  const OFFSET = 4;
  // A defines and exports a memory, a table and an immutable i32 global.
  const exporter: ModuleSpec = {
    memories: [{ min: 1, max: null, shared: false }],
    tables: [{ element: "funcref", min: 8, max: null }],
    globals: [{
      type: { type: "i32", mutable: false },
      init: { kind: "i32.const", value: OFFSET },
    }],
    exports: [
      { name: "mem", kind: "memory", index: 0 },
      { name: "tab", kind: "table", index: 0 },
      { name: "off", kind: "global", index: 0 },
    ],
  };
  const imports = (
    memory: { min: number; max: number | null } = { min: 1, max: null },
  ): ModuleSpec["imports"] => [
    { module: "a", name: "mem", desc: { kind: "memory", type: { ...memory, shared: false } } },
    {
      module: "a",
      name: "tab",
      desc: { kind: "table", type: { element: "funcref", min: 8, max: null } },
    },
    { module: "a", name: "off", desc: { kind: "global", type: { type: "i32", mutable: false } } },
  ];
  // B imports them and writes at the global's value in both.
  const importer: ModuleSpec = {
    types: [{ params: [], results: [] }],
    imports: imports(),
    functions: [0, 0, 0],
    elements: [{ mode: "active", offset: { kind: "global.get", index: 0 }, elements: [2, 0, 1] }],
    data: [{ mode: "active", offset: { kind: "global.get", index: 0 }, data: bytesOf(9, 8, 7, 6) }],
  };

  const MUTABLE_I32 = { type: "i32", mutable: true } as const;

  function importsOf(a: InstanceHandle): Imports {
    return { a: { mem: a.exports.mem, tab: a.exports.tab, off: a.exports.off } };
  }

  for (const kind of KINDS) {
    describe(kind, () => {
      it("B's segments land in A's memory and table at the imported global's value", () => {
        using engine = makeEngine(kind, { moduleLimits: IMPORTING });
        using a = engine.allocate(compile(engine, exporter));
        using b = engine.allocate(compile(engine, importer), importsOf(a));
        assert.equal(b.memories[0], a.memories[0], "not the same Memory object");
        assert.equal(b.tables[0], a.tables[0], "not the same Table object");
        assert.equal(b.globals[0], a.globals[0], "not the same Global object");
        const bytes = new Uint8Array(a.memories[0].buffer);
        assert.deepEqual([...bytes.subarray(0, 10)], [0, 0, 0, 0, 9, 8, 7, 6, 0, 0]);
        assert.deepEqual(entries(a.tables[0]), [null, null, null, null, 2, 0, 1, null]);
      });

      it("the importer keeps the memory and table alive after the exporter is disposed", () => {
        using engine = makeEngine(kind, { moduleLimits: IMPORTING });
        const a = engine.allocate(compile(engine, exporter));
        const memory = a.memories[0];
        const table = a.tables[0];
        const b = engine.allocate(compile(engine, importer), importsOf(a));
        try {
          const buffer = memory.buffer;
          a.dispose();
          assert.equal(a.disposed, true);
          assert.throws(() => a.memories, isError(DisposedError));
          assert.equal(b.memories[0], memory);
          assert.equal(memory.buffer, buffer, "the buffer was detached while still imported");
          assert.equal(new Uint8Array(memory.buffer)[OFFSET], 9);
          assert.equal(memory.grow(1), 1);
          assert.equal(memory.buffer.byteLength, 2 * PAGE);
          new Uint8Array(memory.buffer)[PAGE] = 1;
          assert.equal(table.get(OFFSET), 2);
          table.set(0, 1);
          assert.equal(b.tables[0].get(0), 1);
        } finally {
          b.dispose();
        }
        assert.throws(() => memory.buffer, isError(DisposedError));
        assert.throws(() => memory.grow(1), isError(DisposedError));
        assert.throws(() => table.get(0), isError(DisposedError));
        assert.deepEqual(counters(engine), [2, 2, 0]);
      });

      it("mismatched or missing imports are LinkErrors and leave nothing allocated", () => {
        using engine = makeEngine(kind, { moduleLimits: IMPORTING });
        using a = engine.allocate(compile(engine, exporter));
        const good = importsOf(a);
        const module = compile(engine, importer);
        const link = (m: Module, i: Imports) => () => engine.allocate(m, i);

        assert.throws(link(module, {}), isError(LinkError, /unknown import/));
        assert.throws(link(module, { a: { mem: a.exports.mem } }), isError(LinkError));
        assert.throws(
          link(module, { a: { ...good.a, mem: a.exports.tab } }),
          isError(LinkError, /"a"\."mem"/),
        );
        assert.throws(
          link(module, { a: { ...good.a, tab: a.exports.mem } }),
          isError(LinkError, /"a"\."tab"/),
        );
        assert.throws(link(module, { a: { ...good.a, off: () => 0 } }), isError(LinkError));

        const tooSmall = compile(engine, { ...importer, imports: imports({ min: 2, max: null }) });
        assert.throws(link(tooSmall, good), isError(LinkError, /smaller than the declared/));
        const maxTooSmall = compile(engine, { ...importer, imports: imports({ min: 1, max: 2 }) });
        assert.throws(link(maxTooSmall, good), isError(LinkError, /maximum/));

        // A mutable global cannot feed a segment offset, so this module only imports it.
        const mutable = compile(engine, {
          imports: [{ module: "a", name: "off", desc: { kind: "global", type: MUTABLE_I32 } }],
        });
        assert.throws(link(mutable, good), isError(LinkError, /mutable/));
        assert.throws(link(mutable, { a: { off: OFFSET } }), isError(LinkError, /mutable/));
        const mutableGlobal = new Global({ type: "i32", mutable: true }, OFFSET);
        assert.throws(link(module, { a: { ...good.a, off: mutableGlobal } }), isError(LinkError));
        const i64Global = new Global({ type: "i64" }, 4n);
        assert.throws(link(module, { a: { ...good.a, off: i64Global } }), isError(LinkError));

        // A plain number is an immutable global of the declared type.
        using c = engine.allocate(module, { a: { ...good.a, off: 1 } });
        assert.equal(c.globals[0].value, 1);
        assert.equal(new Uint8Array(a.memories[0].buffer)[1], 9);
        assert.deepEqual(counters(engine), [2, 0, 2]);
      });

      it("an import from another engine is a LinkError", () => {
        using engine = makeEngine(kind, { moduleLimits: IMPORTING });
        using other = makeEngine(kind, { moduleLimits: IMPORTING });
        using foreign = other.allocate(compile(other, exporter));
        using a = engine.allocate(compile(engine, exporter));
        const module = compile(engine, importer);
        const good = importsOf(a);
        assert.throws(
          () => engine.allocate(module, { a: { ...good.a, mem: foreign.exports.mem } }),
          isError(LinkError, /another engine/),
        );
        assert.throws(
          () => engine.allocate(module, { a: { ...good.a, tab: foreign.exports.tab } }),
          isError(LinkError, /another engine/),
        );
        assert.throws(
          () => engine.allocate(compile(other, exporter)),
          isError(WasmpoolError, /another engine/),
        );
        assert.equal(engine.stats().liveInstances, 1);
        assert.equal(other.stats().liveInstances, 1);
      });

      it("an import from a disposed instance is refused", () => {
        using engine = makeEngine(kind, { moduleLimits: IMPORTING });
        const a = engine.allocate(compile(engine, exporter));
        const good = importsOf(a);
        a.dispose();
        assert.throws(
          () => engine.allocate(compile(engine, importer), good),
          isError(DisposedError),
        );
        assert.equal(engine.stats().liveInstances, 0);
      });
    });
  }

  it("pooling: an exporter's slot is not reused while an importer holds its memory", () => {
    using engine = makeEngine("pooling", { count: 2, moduleLimits: IMPORTING });
    const a = engine.allocate(compile(engine, exporter));
    const b = engine.allocate(compile(engine, importer), importsOf(a));
    try {
      const memory = a.memories[0];
      a.dispose();
      assert.throws(
        () => engine.allocate(compile(engine, exporter)),
        isError(PoolExhaustedError, "Limit of 2 concurrent instances has been reached"),
      );
      assert.equal(new Uint8Array(memory.buffer)[OFFSET], 9);
    } finally {
      b.dispose();
    }
    using c = engine.allocate(compile(engine, exporter));
    assert.ok(allZero(c.memories[0].buffer));
    assert.deepEqual(entries(c.tables[0]), new Array(8).fill(null));
  });
});

describe("malformed modules", () => {
  /** A deterministic generator of bytes (xorshift32). */
  function randomBytes(seed: number, length: number): Uint8Array<ArrayBuffer> {
    let x = seed >>> 0 || 1;
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      out[i] = x & 0xff;
    }
    return out;
  }

  function assertMalformed(engine: Engine, bytes: Uint8Array<ArrayBuffer>, what: string) {
    assert.equal(WebAssembly.validate(bytes), false, `${what} is a valid module`);
    assert.throws(() => new Module(engine, bytes), (e: unknown) => {
      assert.ok(
        e instanceof MalformedModuleError,
        `${what}: expected MalformedModuleError, got ${e}`,
      );
      assert.ok(e instanceof WasmpoolError);
      assert.equal(typeof e.offset, "number");
      assert.ok(
        Number.isInteger(e.offset) && e.offset >= 0 && e.offset <= bytes.length,
        `${what}: offset ${e.offset} is outside the ${bytes.length} bytes`,
      );
      assert.ok(e.message.includes(`offset ${e.offset}`), e.message);
      return true;
    });
  }

  for (const kind of KINDS) {
    describe(kind, () => {
      it("random bytes", () => {
        using engine = makeEngine(kind);
        for (let seed = 1; seed <= 64; seed++) {
          assertMalformed(engine, randomBytes(seed, 16 + seed * 7), `random bytes (seed ${seed})`);
        }
        assertMalformed(engine, new Uint8Array(0), "no bytes");
      });

      it("random sections after a valid header", () => {
        using engine = makeEngine(kind);
        for (let seed = 1; seed <= 300; seed++) {
          const body = randomBytes(seed, 4 + (seed % 200));
          body[0] = seed % 13; // a section id
          body[1] = Math.min(body.length - 2, 127); // a size that fits
          const bytes = new Uint8Array(8 + body.length);
          bytes.set(HEADER);
          bytes.set(body, 8);
          const what = `random section (seed ${seed})`;
          if (WebAssembly.validate(bytes)) {
            new Module(engine, bytes);
            continue;
          }
          assert.throws(() => new Module(engine, bytes), (e: unknown) => {
            assert.ok(
              e instanceof MalformedModuleError || e instanceof UnsupportedFeatureError,
              `${what}: got ${e}`,
            );
            assert.ok(e.offset >= 0 && e.offset <= bytes.length, `${what}: ${e.message}`);
            return true;
          });
        }
      });

      it("bad magic and bad version", () => {
        using engine = makeEngine(kind);
        const bytes = buildModule(memoryModule(1));
        for (let i = 0; i < 8; i++) {
          const bad = bytes.slice();
          bad[i] ^= 0x40;
          assertMalformed(engine, bad, `byte ${i} flipped`);
          assert.throws(() => new Module(engine, bad), { offset: i < 4 ? 0 : 4 });
        }
        assertMalformed(engine, bytes.slice(0, 3), "three bytes of magic");
      });

      it("truncated real modules", () => {
        using engine = makeEngine(kind);
        for (const m of realModules()) {
          const bytes = readRealModule(m);
          const cuts = [9, 10, 100, 1000, bytes.length >>> 1, bytes.length - 100, bytes.length - 1];
          for (const cut of cuts) {
            assertMalformed(engine, bytes.slice(0, cut), `${m.name} cut to ${cut} bytes`);
          }
        }
      });
    });
  }
});

describe("globals", () => {
  const spec: ModuleSpec = {
    imports: [
      {
        module: "env",
        name: "base",
        desc: { kind: "global", type: { type: "i32", mutable: false } },
      },
      {
        module: "env",
        name: "wide",
        desc: { kind: "global", type: { type: "i64", mutable: false } },
      },
    ],
    globals: [
      { type: { type: "i32", mutable: false }, init: { kind: "i32.const", value: -5 } },
      {
        type: { type: "i64", mutable: false },
        init: { kind: "i64.const", value: -(2n ** 40n) - 1n },
      },
      { type: { type: "f32", mutable: false }, init: { kind: "f32.const", value: 1.1 } },
      { type: { type: "f64", mutable: false }, init: { kind: "f64.const", value: Math.PI } },
      { type: { type: "i32", mutable: false }, init: { kind: "global.get", index: 0 } },
      { type: { type: "i64", mutable: true }, init: { kind: "global.get", index: 1 } },
      { type: { type: "i32", mutable: true }, init: { kind: "i32.const", value: 2147483647 } },
    ],
    exports: [
      { name: "i32", kind: "global", index: 2 },
      { name: "i64", kind: "global", index: 3 },
      { name: "f32", kind: "global", index: 4 },
      { name: "f64", kind: "global", index: 5 },
      { name: "copy", kind: "global", index: 6 },
      { name: "wideCopy", kind: "global", index: 7 },
      { name: "counter", kind: "global", index: 8 },
    ],
  };

  for (const kind of KINDS) {
    describe(kind, () => {
      it("defined globals get their initial values", () => {
        using engine = makeEngine(kind, { moduleLimits: IMPORTING });
        const base = new Global({ type: "i32" }, 42);
        using instance = engine.allocate(compile(engine, spec), {
          env: { base, wide: 1n << 62n },
        });
        const globals = instance.globals;
        assert.equal(globals.length, 9);
        assert.equal(globals[0], base);
        assert.equal(globals[1].value, 1n << 62n);
        const e = instance.exports as Record<string, Global>;
        assert.equal(e.i32.value, -5);
        assert.equal(e.i32.type, "i32");
        assert.equal(e.i64.value, -(2n ** 40n) - 1n);
        assert.equal(typeof e.i64.value, "bigint");
        assert.equal(e.f32.value, Math.fround(1.1));
        assert.notEqual(e.f32.value, 1.1);
        assert.equal(e.f64.value, Math.PI);
        assert.equal(e.copy.value, 42);
        assert.equal(e.wideCopy.value, 1n << 62n);
        assert.equal(e.counter.value, 2147483647);
        assert.equal(globals[2], e.i32);
        assert.equal(globals[8], e.counter);
      });

      it("an immutable global cannot be set; a mutable one can, within its type", () => {
        using engine = makeEngine(kind, { moduleLimits: IMPORTING });
        using instance = engine.allocate(compile(engine, spec), {
          env: { base: 1, wide: 2n },
        });
        const e = instance.exports as Record<string, Global>;
        for (const name of ["i32", "i64", "f32", "f64", "copy"]) {
          const before = e[name].value;
          assert.equal(e[name].mutable, false);
          assert.throws(() => (e[name].value = 0), isError(ArgumentError, /immutable/));
          assert.equal(e[name].value, before);
        }
        assert.throws(() => ((instance.globals[0] as Global).value = 3), isError(ArgumentError));
        e.counter.value = 2 ** 32 + 3;
        assert.equal(e.counter.value, 3);
        assert.throws(() => (e.counter.value = 1n), isError(ArgumentError));
        e.wideCopy.value = -1n;
        assert.equal(e.wideCopy.value, -1n);
        assert.throws(() => (e.wideCopy.value = 1), isError(ArgumentError));
      });

      it("a global's value is not shared with a later instance of the module", () => {
        using engine = makeEngine(kind, { moduleLimits: IMPORTING });
        const module = compile(engine, spec);
        const first = engine.allocate(module, { env: { base: 1, wide: 2n } });
        (first.exports.counter as Global).value = 9;
        first.dispose();
        using second = engine.allocate(module, { env: { base: 1, wide: 2n } });
        assert.equal((second.exports.counter as Global).value, 2147483647);
      });
    });
  }
});

describe("engine.stats()", () => {
  const outOfBounds: ModuleSpec = {
    memories: [{ min: 1, max: null, shared: false }],
    data: [{ mode: "active", offset: { kind: "i32.const", value: PAGE }, data: bytesOf(1) }],
  };

  for (const kind of KINDS) {
    it(`${kind}: counts instantiations, deallocations and live instances`, () => {
      using engine = makeEngine(kind, { count: 3 });
      const initial = engine.stats();
      assert.equal(initial.strategy, kind === "on-demand" ? "on-demand" : "pooling");
      assert.equal(initial.instanceCapacity > 0, true);
      if (kind !== "on-demand") assert.equal(initial.instanceCapacity, 3);
      assert.deepEqual(counters(engine), [0, 0, 0]);

      const module = compile(engine, memoryModule(1));
      const live = [engine.allocate(module), engine.allocate(module)];
      assert.deepEqual(counters(engine), [2, 0, 2]);
      live[0].dispose();
      live[0].dispose();
      assert.deepEqual(counters(engine), [2, 1, 1]);

      assert.throws(
        () => engine.allocate(compile(engine, outOfBounds)),
        isError(OutOfBoundsError),
      );
      assert.deepEqual(counters(engine), [2, 1, 1], "a failed instantiation was counted");

      live.push(engine.allocate(module), engine.allocate(module));
      assert.deepEqual(counters(engine), [4, 1, 3]);
      if (kind !== "on-demand") {
        assert.throws(
          () => engine.allocate(module),
          isError(PoolExhaustedError, "Limit of 3 concurrent instances has been reached"),
        );
        assert.deepEqual(counters(engine), [4, 1, 3], "a refused instantiation was counted");
      }
      for (const instance of live) instance.dispose();
      assert.deepEqual(counters(engine), [4, 4, 0]);
      assert.equal(engine.stats().quarantinedSlots, 0);
    });
  }
});

/** Keeps the type-only imports honest: Memory and Table are the classes instances hand out. */
it("instances hand out Memory and Table objects", () => {
  using engine = makeEngine("pooling");
  using instance = engine.allocate(compile(engine, {
    ...memoryModule(1),
    tables: [{ element: "funcref", min: 1, max: null }],
  }));
  assert.ok(instance.memories[0] instanceof Memory);
  assert.ok(instance.tables[0] instanceof Table);
});
