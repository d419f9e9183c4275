/**
 * Tests of the module binary reader and parser. Runs under `deno test` and `bun test`.
 *
 * @module
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MalformedModuleError, UnsupportedFeatureError, WasmpoolError } from "../src/errors.ts";
import { ByteReader } from "../src/module/reader.ts";
import { parseModule } from "../src/module/parse.ts";
import type { ParsedModule } from "../src/module/types.ts";
import {
  assembleModule,
  buildModule,
  constExpr,
  elementFlags,
  type ElementSpec,
  encodeSections,
  HEADER,
  limits,
  type ModuleSpec,
  name,
  type Section,
  SectionId,
  sleb,
  u32,
} from "./fixtures/wasm_builder.ts";

type ErrorClass = typeof MalformedModuleError | typeof UnsupportedFeatureError;

/** Asserts `fn` throws an instance of `cls` at `offset`, with a message matching `message`. */
function throwsAt(fn: () => unknown, cls: ErrorClass, offset: number, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    assert.equal(e.offset, offset, `wrong offset in "${e.message}"`);
    if (message !== undefined) assert.match(e.message, message);
    return true;
  });
}

/** Asserts parsing `bytes` throws `cls` at `offset`. */
function rejects(bytes: Uint8Array, cls: ErrorClass, offset: number, message?: RegExp): void {
  throwsAt(() => parseModule(bytes), cls, offset, message);
}

/** A module made of raw sections, `[id, contents]`. */
function raw(...sections: [number, number[]][]): Uint8Array<ArrayBuffer> {
  return assembleModule(
    sections.map(([id, payload]) => ({ id, payload: Uint8Array.from(payload) })),
  );
}

/** The absolute offset of the contents of `sections[index]` once assembled. */
function payloadAt(sections: readonly Section[], index: number): number {
  let at = HEADER.length;
  for (let i = 0; i < index; i++) {
    at += 1 + u32(sections[i].payload.length).length + sections[i].payload.length;
  }
  return at + 1 + u32(sections[index].payload.length).length;
}

/** Whether the runtime's own WebAssembly implementation accepts `bytes`. */
function engineAccepts(bytes: Uint8Array<ArrayBuffer>): boolean {
  try {
    new WebAssembly.Module(bytes);
    return true;
  } catch {
    return false;
  }
}

/** Builds a module, checks the engine accepts it, and parses it. */
function buildAndParse(spec: ModuleSpec): ParsedModule {
  const bytes = buildModule(spec);
  assert.ok(engineAccepts(bytes), "the engine rejects the builder's module");
  return parseModule(bytes);
}

const I32 = { type: "i32", mutable: false } as const;
const VOID = { params: [], results: [] } as const;
const MEM1 = { min: 1, max: null, shared: false } as const;
const TABLE10 = { element: "funcref", min: 10, max: null } as const;
const bytesOf = (...b: number[]): Uint8Array => Uint8Array.from(b);

/**
 * A module using every section and most encodings. Its sections depend on each other, so
 * of its strict prefixes only the header alone and the cuts after the type and import
 * sections are complete modules.
 */
const FULL: ModuleSpec = {
  types: [VOID, { params: ["i32", "i64"], results: ["f32", "f64", "funcref", "externref"] }],
  imports: [
    { module: "env", name: "f", desc: { kind: "function", type: 0 } },
    {
      module: "env",
      name: "t",
      desc: { kind: "table", type: { element: "externref", min: 1, max: 5 } },
    },
    { module: "env", name: "m", desc: { kind: "memory", type: { min: 1, max: 2, shared: false } } },
    { module: "env", name: "g", desc: { kind: "global", type: I32 } },
  ],
  functions: [0, 1, 0],
  tables: [{ element: "funcref", min: 4, max: 8 }],
  globals: [
    { type: { type: "i32", mutable: true }, init: { kind: "global.get", index: 0 } },
    { type: { type: "i64", mutable: false }, init: { kind: "i64.const", value: -1234567890123n } },
    { type: { type: "f64", mutable: false }, init: { kind: "f64.const", value: 0.5 } },
    { type: { type: "funcref", mutable: false }, init: { kind: "ref.func", index: 2 } },
  ],
  exports: [
    { name: "run", kind: "function", index: 1 },
    { name: "table", kind: "table", index: 1 },
    { name: "mem", kind: "memory", index: 0 },
    { name: "big", kind: "global", index: 2 },
  ],
  start: 3,
  elements: [
    { mode: "active", table: 1, offset: { kind: "global.get", index: 0 }, elements: [0, 1] },
    { mode: "passive", elements: [null, 3] },
    { mode: "declarative", elements: [2] },
  ],
  dataCount: true,
  data: [
    { mode: "active", offset: { kind: "i32.const", value: 16 }, data: bytesOf(1, 2, 3) },
    { mode: "passive", data: bytesOf(4, 5) },
  ],
};

describe("ByteReader", () => {
  const reader = (...b: number[]): ByteReader => new ByteReader(Uint8Array.from(b));

  it("reads u32 LEB128, including the largest value and padded encodings", () => {
    const cases: [number[], number][] = [
      [[0x00], 0],
      [[0x7f], 127],
      [[0x80, 0x01], 128],
      [[0xe5, 0x8e, 0x26], 624485],
      [[0xff, 0xff, 0xff, 0xff, 0x0f], 0xffffffff],
      [[0x80, 0x80, 0x80, 0x80, 0x00], 0],
      [[0x81, 0x80, 0x00], 1],
    ];
    for (const [bytes, value] of cases) {
      const r = reader(...bytes);
      assert.equal(r.u32(), value);
      assert.ok(r.atEnd());
    }
  });

  it("rejects u32 LEB128 that is too long, too large or truncated", () => {
    throwsAt(
      () => reader(0xff, 0xff, 0xff, 0xff, 0x1f).u32(),
      MalformedModuleError,
      0,
      /too large/,
    );
    throwsAt(
      () => reader(0xff, 0xff, 0xff, 0xff, 0x7f).u32(),
      MalformedModuleError,
      0,
      /too large/,
    );
    throwsAt(
      () => reader(0x80, 0x80, 0x80, 0x80, 0x80, 0x00).u32(),
      MalformedModuleError,
      0,
      /too long/,
    );
    const r = reader(0x05, 0x80, 0x80);
    r.u8();
    throwsAt(() => r.u32(), MalformedModuleError, 1, /unexpected end/);
    throwsAt(() => reader().u32(), MalformedModuleError, 0, /unexpected end/);
  });

  it("reads s32 LEB128 with sign extension", () => {
    const cases: [number[], number][] = [
      [[0x00], 0],
      [[0x7f], -1],
      [[0x3f], 63],
      [[0x40], -64],
      [[0x80, 0x7f], -128],
      [[0xff, 0xff, 0xff, 0xff, 0x07], 0x7fffffff],
      [[0x80, 0x80, 0x80, 0x80, 0x78], -0x80000000],
      [[0xff, 0xff, 0xff, 0xff, 0x7f], -1],
    ];
    for (const [bytes, value] of cases) assert.equal(reader(...bytes).s32(), value);
    for (let i = 0; i < 200; i++) {
      const value = (Math.imul(i, 0x9e3779b1) ^ (i << 7)) | 0;
      assert.equal(reader(...sleb(value)).s32(), value);
    }
  });

  it("rejects s32 LEB128 whose unused bits do not repeat the sign", () => {
    throwsAt(
      () => reader(0xff, 0xff, 0xff, 0xff, 0x0f).s32(),
      MalformedModuleError,
      0,
      /too large/,
    );
    throwsAt(
      () => reader(0x80, 0x80, 0x80, 0x80, 0x08).s32(),
      MalformedModuleError,
      0,
      /too large/,
    );
    throwsAt(
      () => reader(0x80, 0x80, 0x80, 0x80, 0x70).s32(),
      MalformedModuleError,
      0,
      /too large/,
    );
    throwsAt(
      () => reader(0xff, 0xff, 0xff, 0xff, 0xff, 0x7f).s32(),
      MalformedModuleError,
      0,
      /too long/,
    );
    throwsAt(() => reader(0xff, 0xff).s32(), MalformedModuleError, 0, /unexpected end/);
  });

  it("reads s64 LEB128 across the whole range", () => {
    const values = [
      0n,
      -1n,
      63n,
      -64n,
      2n ** 48n,
      -(2n ** 48n),
      2n ** 55n + 3n,
      -(2n ** 62n),
      2n ** 63n - 1n,
      -(2n ** 63n),
      -1234567890123n,
    ];
    for (const value of values) {
      const r = reader(...sleb(value));
      assert.equal(r.s64(), value);
      assert.ok(r.atEnd());
    }
  });

  it("rejects s64 LEB128 that is too long or too large", () => {
    const nine = Array(9).fill(0xff);
    assert.equal(reader(...nine, 0x7f).s64(), -1n);
    throwsAt(() => reader(...nine, 0x01).s64(), MalformedModuleError, 0, /too large/);
    throwsAt(
      () => reader(...Array(9).fill(0x80), 0x7e).s64(),
      MalformedModuleError,
      0,
      /too large/,
    );
    throwsAt(
      () => reader(...Array(10).fill(0x80), 0x00).s64(),
      MalformedModuleError,
      0,
      /too long/,
    );
    throwsAt(() => reader(...nine).s64(), MalformedModuleError, 0, /unexpected end/);
  });

  it("reads little-endian floats and bounds-checks them", () => {
    const r = reader(0x00, 0x00, 0xc0, 0x3f, 0, 0, 0, 0, 0, 0, 0xf0, 0xbf);
    assert.equal(r.f32(), 1.5);
    assert.equal(r.f64(), -1);
    throwsAt(() => reader(0, 0, 0).f32(), MalformedModuleError, 0);
    const s = reader(9, 0, 0, 0, 0, 0, 0, 0);
    s.u8();
    throwsAt(() => s.f64(), MalformedModuleError, 1);
  });

  it("reads floats from a view at a non-zero byte offset", () => {
    const buffer = Uint8Array.of(0xaa, 0x00, 0x00, 0x80, 0x3f);
    const r = new ByteReader(buffer.subarray(1));
    assert.equal(r.f32(), 1);
  });

  it("reads names and rejects invalid UTF-8", () => {
    const long = "a".repeat(40);
    const emoji = "\u{1f600} snowman \u2603 ".repeat(5);
    const r = reader(
      ...name("h\u00e9llo"),
      ...name(""),
      ...name("plain"),
      ...name(long),
      ...name(emoji),
    );
    assert.equal(r.name(), "h\u00e9llo");
    assert.equal(r.name(), "");
    assert.equal(r.name(), "plain");
    assert.equal(r.name(), long);
    assert.equal(r.name(), emoji);
    assert.ok(r.atEnd());
    // A lone surrogate encoded as UTF-8 (CESU) is not valid UTF-8.
    throwsAt(() => reader(0x03, 0xed, 0xa0, 0x80).name(), MalformedModuleError, 1, /UTF-8/);
    throwsAt(() => reader(0x02, 0xc3, 0x28).name(), MalformedModuleError, 1, /UTF-8/);
    throwsAt(() => reader(0x01, 0xff).name(), MalformedModuleError, 1, /UTF-8/);
    throwsAt(() => reader(0x05, 0x61).name(), MalformedModuleError, 0, /unexpected end/);
  });

  it("returns byte ranges as views, not copies", () => {
    const buf = Uint8Array.of(1, 2, 3, 4, 5);
    const r = new ByteReader(buf, 1, 4);
    assert.equal(r.offset, 1);
    assert.equal(r.remaining, 3);
    const view = r.bytes(2);
    assert.equal(view.buffer, buf.buffer);
    assert.equal(view.byteOffset, 1);
    assert.deepEqual([...view], [2, 3]);
    throwsAt(() => r.bytes(2), MalformedModuleError, 3, /unexpected end/);
    assert.equal(r.u8(), 4);
    throwsAt(() => r.u8(), MalformedModuleError, 4, /unexpected end/);
  });

  it("keeps absolute offsets in sub-readers", () => {
    const r = reader(0x00, 0x01, 0x02, 0x03);
    r.u8();
    const sub = r.sub(2);
    assert.equal(r.offset, 3);
    assert.equal(sub.offset, 1);
    assert.equal(sub.end, 3);
    sub.skip(2);
    throwsAt(() => sub.u8(), MalformedModuleError, 3);
    throwsAt(() => r.sub(5), MalformedModuleError, 3);
  });
});

describe("parseModule: valid modules", () => {
  it("parses an empty module", () => {
    const module = parseModule(HEADER.slice());
    assert.deepEqual(module, {
      types: [],
      imports: [],
      functions: [],
      tables: [],
      tableInits: [],
      memories: [],
      globals: [],
      exports: [],
      start: null,
      elements: [],
      data: [],
      dataCount: null,
      code: null,
    });
  });

  it("records where the code section's contents lie", () => {
    const sections = encodeSections(FULL);
    const index = sections.findIndex((section) => section.id === SectionId.code);
    const start = payloadAt(sections, index);
    const code = parseModule(assembleModule(sections)).code;
    assert.deepEqual(code, { start, end: start + sections[index].payload.length });
    assert.equal(parseModule(buildModule({ memories: [MEM1] })).code, null);
  });

  it("parses a module using every section", () => {
    const bytes = buildModule(FULL);
    assert.ok(engineAccepts(bytes));
    const module = parseModule(bytes);
    assert.deepEqual(module.types, FULL.types);
    assert.deepEqual(module.imports, FULL.imports);
    assert.deepEqual(module.functions, [0, 1, 0]);
    assert.deepEqual(module.tables, FULL.tables);
    assert.deepEqual(module.memories, []);
    assert.deepEqual(module.globals, FULL.globals);
    assert.deepEqual(module.exports, FULL.exports);
    assert.equal(module.start, 3);
    assert.deepEqual(module.elements, [
      {
        mode: "active",
        table: 1,
        offset: { kind: "global.get", index: 0 },
        type: "funcref",
        elements: [0, 1],
      },
      { mode: "passive", table: 0, offset: null, type: "funcref", elements: [null, 3] },
      { mode: "declarative", table: 0, offset: null, type: "funcref", elements: [2] },
    ]);
    assert.equal(module.dataCount, 2);
    assert.equal(module.data.length, 2);
    assert.deepEqual(module.data[0].offset, { kind: "i32.const", value: 16 });
    assert.equal(module.data[0].mode, "active");
    assert.equal(module.data[1].mode, "passive");
    assert.equal(module.data[1].offset, null);
  });

  it("returns data segments as views into the input", () => {
    const payload = Uint8Array.from({ length: 300 }, (_, i) => i & 0xff);
    const bytes = buildModule({ memories: [MEM1], data: [{ mode: "active", data: payload }] });
    const [segment] = parseModule(bytes).data;
    assert.equal(segment.data.buffer, bytes.buffer);
    assert.deepEqual(segment.data, payload);
    assert.equal(bytes[segment.data.byteOffset - 1], 0x02); // the end of the length LEB (300)
  });

  it("parses a module given as a view at a non-zero offset", () => {
    const inner = buildModule(FULL);
    const outer = new Uint8Array(inner.length + 7);
    outer.set(inner, 3);
    const module = parseModule(outer.subarray(3, 3 + inner.length));
    assert.deepEqual(module.globals, FULL.globals);
    assert.deepEqual([...module.data[0].data], [1, 2, 3]);
  });

  it("parses every value type in function signatures", () => {
    const type = {
      params: ["i32", "i64", "f32", "f64", "v128", "funcref", "externref"],
      results: ["externref", "funcref", "v128", "f64", "f32", "i64", "i32"],
    } as const;
    const module = buildAndParse({ types: [type, VOID], functions: [0, 1] });
    assert.deepEqual(module.types, [type, VOID]);
    assert.deepEqual(module.functions, [0, 1]);
  });

  it("parses imports of each kind", () => {
    const imports = [
      { module: "a", name: "fn", desc: { kind: "function", type: 0 } },
      {
        module: "a",
        name: "tab",
        desc: { kind: "table", type: { element: "funcref", min: 0, max: null } },
      },
      {
        module: "b",
        name: "xt",
        desc: { kind: "table", type: { element: "externref", min: 3, max: 3 } },
      },
      {
        module: "b",
        name: "mem",
        desc: { kind: "memory", type: { min: 0, max: 65536, shared: false } },
      },
      { module: "c", name: "g1", desc: { kind: "global", type: { type: "f32", mutable: true } } },
      {
        module: "c",
        name: "g2",
        desc: { kind: "global", type: { type: "externref", mutable: false } },
      },
      { module: "\u00fcn\u00ef", name: "", desc: { kind: "function", type: 0 } },
    ] as const;
    const module = buildAndParse({ types: [VOID], imports });
    assert.deepEqual(module.imports, imports);
  });

  it("parses shared memories", () => {
    const memory = { min: 1, max: 10, shared: true } as const;
    const module = parseModule(buildModule({ memories: [memory] }));
    assert.deepEqual(module.memories, [memory]);
    const imported = parseModule(buildModule({
      imports: [{ module: "m", name: "m", desc: { kind: "memory", type: memory } }],
    }));
    assert.deepEqual(imported.imports[0].desc, { kind: "memory", type: memory });
  });

  it("does not limit the number of tables and memories", () => {
    const tables = Array.from({ length: 50 }, () => TABLE10);
    const memories = Array.from({ length: 50 }, () => MEM1);
    const module = parseModule(buildModule({
      tables,
      memories,
      data: [{ mode: "active", memory: 49, data: bytesOf(1) }],
      elements: [{ mode: "active", table: 49, elements: [] }],
    }));
    assert.equal(module.tables.length, 50);
    assert.equal(module.memories.length, 50);
    assert.equal(module.data[0].memory, 49);
    assert.equal(module.elements[0].table, 49);
  });

  it("parses globals initialized by each kind of constant expression", () => {
    const v128 = Uint8Array.from({ length: 16 }, (_, i) => i * 3);
    const globals = [
      { type: { type: "i32", mutable: false }, init: { kind: "i32.const", value: -2147483648 } },
      {
        type: { type: "i64", mutable: true },
        init: { kind: "i64.const", value: 9223372036854775807n },
      },
      { type: { type: "f32", mutable: false }, init: { kind: "f32.const", value: -0.25 } },
      { type: { type: "f64", mutable: false }, init: { kind: "f64.const", value: Math.PI } },
      { type: { type: "v128", mutable: false }, init: { kind: "v128.const", bytes: v128 } },
      { type: { type: "i32", mutable: false }, init: { kind: "global.get", index: 0 } },
      { type: { type: "funcref", mutable: false }, init: { kind: "ref.null", type: "funcref" } },
      { type: { type: "externref", mutable: true }, init: { kind: "ref.null", type: "externref" } },
      { type: { type: "funcref", mutable: false }, init: { kind: "ref.func", index: 1 } },
      { type: { type: "f64", mutable: false }, init: { kind: "global.get", index: 1 } },
    ] as const;
    const module = parseModule(buildModule({
      types: [VOID],
      imports: [
        { module: "m", name: "g", desc: { kind: "global", type: I32 } },
        { module: "m", name: "h", desc: { kind: "global", type: { type: "f64", mutable: false } } },
        { module: "m", name: "f", desc: { kind: "function", type: 0 } },
      ],
      functions: [0],
      globals,
    }));
    assert.deepEqual(module.globals, globals);
    const init = module.globals[4].init;
    assert.ok(init.kind === "v128.const");
    assert.deepEqual([...init.bytes], [...v128]);
  });

  it("lets a global initializer refer to an earlier defined immutable global", () => {
    const module = parseModule(buildModule({
      globals: [
        { type: I32, init: { kind: "i32.const", value: 7 } },
        { type: I32, init: { kind: "global.get", index: 0 } },
      ],
    }));
    assert.deepEqual(module.globals[1].init, { kind: "global.get", index: 0 });
  });

  it("checks exports against index spaces that count imports first", () => {
    const exports = [
      { name: "f0", kind: "function", index: 0 },
      { name: "f2", kind: "function", index: 2 },
      { name: "t0", kind: "table", index: 0 },
      { name: "t1", kind: "table", index: 1 },
      { name: "m0", kind: "memory", index: 0 },
      { name: "g0", kind: "global", index: 0 },
      { name: "g1", kind: "global", index: 1 },
      { name: "", kind: "global", index: 1 },
    ] as const;
    const spec: ModuleSpec = {
      types: [VOID],
      imports: [
        { module: "m", name: "f", desc: { kind: "function", type: 0 } },
        { module: "m", name: "t", desc: { kind: "table", type: TABLE10 } },
        { module: "m", name: "g", desc: { kind: "global", type: I32 } },
      ],
      functions: [0, 0],
      tables: [TABLE10],
      memories: [MEM1],
      globals: [{ type: I32, init: { kind: "i32.const", value: 1 } }],
      exports,
    };
    assert.deepEqual(buildAndParse(spec).exports, exports);
    for (
      const [kind, size] of [["function", 3], ["table", 2], ["memory", 1], ["global", 2]] as const
    ) {
      const bad = buildModule({ ...spec, exports: [{ name: "x", kind, index: size }] });
      const sections = encodeSections({ ...spec, exports: [{ name: "x", kind, index: size }] });
      const exportSection = sections.findIndex((s) => s.id === SectionId.export);
      // count (1) + name "x" (2) + kind (1)
      rejects(
        bad,
        MalformedModuleError,
        payloadAt(sections, exportSection) + 4,
        new RegExp(`unknown ${kind} ${size}`),
      );
    }
  });

  it("parses the start section", () => {
    const module = buildAndParse({
      types: [VOID],
      imports: [{ module: "m", name: "f", desc: { kind: "function", type: 0 } }],
      functions: [0],
      start: 1,
    });
    assert.equal(module.start, 1);
  });

  it("parses all eight element segment encodings", () => {
    const base: ModuleSpec = {
      types: [VOID],
      functions: [0, 0, 0],
      tables: [TABLE10, { element: "externref", min: 10, max: null }],
    };
    const offset = { kind: "i32.const", value: 2 } as const;
    const cases: [ElementSpec, number][] = [
      [{ mode: "active", offset, elements: [0, 1, 2] }, 0],
      [{ mode: "passive", elements: [2, 1] }, 1],
      [{ mode: "active", table: 0, explicitTable: true, offset, elements: [1] }, 2],
      [{ mode: "declarative", elements: [0] }, 3],
      [{ mode: "active", offset, elements: [0, null], encoding: "expressions" }, 4],
      [{ mode: "passive", elements: [null, 1], encoding: "expressions" }, 5],
      [{ mode: "active", table: 1, type: "externref", offset, elements: [null, null] }, 6],
      [{ mode: "declarative", elements: [2], encoding: "expressions" }, 7],
    ];
    for (const [segment, flags] of cases) {
      assert.equal(elementFlags(segment), flags);
      const module = buildAndParse({ ...base, elements: [segment] });
      const active = segment.mode === "active";
      assert.deepEqual(module.elements, [{
        mode: segment.mode,
        table: segment.table ?? 0,
        offset: active ? offset : null,
        type: segment.type ?? "funcref",
        elements: segment.elements,
      }], `flags ${flags}`);
    }
  });

  it("parses the three data segment encodings and the data count section", () => {
    const spec: ModuleSpec = {
      imports: [{ module: "m", name: "m", desc: { kind: "memory", type: MEM1 } }],
      memories: [MEM1],
      dataCount: true,
      data: [
        { mode: "active", offset: { kind: "i32.const", value: 100 }, data: bytesOf(1) },
        { mode: "passive", data: bytesOf() },
        { mode: "active", memory: 1, offset: { kind: "i32.const", value: 7 }, data: bytesOf(2, 3) },
        { mode: "active", memory: 0, explicitMemory: true, data: bytesOf(4) },
      ],
    };
    const module = parseModule(buildModule(spec));
    assert.equal(module.dataCount, 4);
    assert.deepEqual(
      module.data.map((d) => ({ ...d, data: [...d.data] })),
      [
        { mode: "active", memory: 0, offset: { kind: "i32.const", value: 100 }, data: [1] },
        { mode: "passive", memory: 0, offset: null, data: [] },
        { mode: "active", memory: 1, offset: { kind: "i32.const", value: 7 }, data: [2, 3] },
        { mode: "active", memory: 0, offset: { kind: "i32.const", value: 0 }, data: [4] },
      ],
    );
    // A segment offset may read any immutable i32 global.
    const withGlobal = buildAndParse({
      imports: [{ module: "m", name: "g", desc: { kind: "global", type: I32 } }],
      memories: [MEM1],
      data: [{ mode: "active", offset: { kind: "global.get", index: 0 }, data: bytesOf(1) }],
    });
    assert.deepEqual(withGlobal.data[0].offset, { kind: "global.get", index: 0 });
    assert.equal(withGlobal.dataCount, null);
  });

  it("accepts a data count of zero without a data section", () => {
    assert.equal(buildAndParse({ dataCount: true }).dataCount, 0);
  });

  it("skips custom sections anywhere, and function bodies", () => {
    const sections = encodeSections(FULL);
    const custom = (text: string): Section => ({
      id: SectionId.custom,
      payload: Uint8Array.from([...name(text), 0xff, 0x00, 0x13]),
    });
    const interleaved = sections.flatMap((s, i) => [custom(`c${i}`), s]);
    interleaved.push(custom("last"), { id: 0, payload: Uint8Array.from(name("")) });
    const bytes = assembleModule(interleaved);
    assert.ok(engineAccepts(bytes));
    // Everything but the code section's offsets, which the custom sections move.
    const { code: movedCode, ...moved } = parseModule(bytes);
    const { code: plainCode, ...plain } = parseModule(buildModule(FULL));
    assert.deepEqual(moved, plain);
    assert.ok(movedCode !== null && plainCode !== null);
    assert.equal(movedCode.end - movedCode.start, plainCode.end - plainCode.start);
    assert.ok(movedCode.start > plainCode.start);
  });

  it("accepts what the engine accepts: padded LEB128 and empty sections", () => {
    const bytes = raw(
      [SectionId.type, [0x81, 0x80, 0x80, 0x80, 0x00, 0x60, 0x80, 0x00, 0x00]],
      [SectionId.function, [0x01, 0x80, 0x80, 0x00]],
      [SectionId.table, [0x00]],
      [SectionId.memory, [0x01, 0x01, 0x81, 0x00, 0x82, 0x80, 0x00]],
      [SectionId.global, [0x00]],
      [SectionId.export, [0x00]],
      [SectionId.element, [0x00]],
      [SectionId.code, [0x01, 0x02, 0x00, 0x0b]],
      [SectionId.data, [0x00]],
    );
    assert.ok(engineAccepts(bytes));
    const module = parseModule(bytes);
    assert.deepEqual(module.types, [VOID]);
    assert.deepEqual(module.memories, [{ min: 1, max: 2, shared: false }]);
  });
});

describe("parseModule: malformed and unsupported modules", () => {
  it("rejects a bad magic number or version", () => {
    rejects(bytesOf(), MalformedModuleError, 0, /magic/);
    rejects(bytesOf(0x00, 0x61, 0x73), MalformedModuleError, 0, /magic/);
    rejects(bytesOf(0x00, 0x61, 0x73, 0x6e, 1, 0, 0, 0), MalformedModuleError, 0, /magic/);
    rejects(bytesOf(0x00, 0x61, 0x73, 0x6d), MalformedModuleError, 4, /version/);
    rejects(bytesOf(0x00, 0x61, 0x73, 0x6d, 2, 0, 0, 0), MalformedModuleError, 4, /version/);
    rejects(bytesOf(0x00, 0x61, 0x73, 0x6d, 1, 0, 0), MalformedModuleError, 4, /version/);
    rejects(bytesOf(0x00, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0), MalformedModuleError, 4, /version/);
  });

  it("rejects an overlong or overflowing LEB128 section size", () => {
    const header = [...HEADER];
    rejects(
      bytesOf(...header, 1, 0xff, 0xff, 0xff, 0xff, 0x1f),
      MalformedModuleError,
      9,
      /too large/,
    );
    rejects(
      bytesOf(...header, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0),
      MalformedModuleError,
      9,
      /too long/,
    );
    rejects(bytesOf(...header, 1, 0x80, 0x80), MalformedModuleError, 9, /unexpected end/);
  });

  it("rejects an overflowing LEB128 inside a section", () => {
    rejects(
      raw([SectionId.memory, [0x01, 0x00, 0x80, 0x80, 0x80, 0x80, 0x10]]),
      MalformedModuleError,
      12,
      /too large/,
    );
  });

  it("rejects a section larger than the rest of the module", () => {
    rejects(bytesOf(...HEADER, 1, 0x05, 0x00), MalformedModuleError, 9, /exceeds/);
  });

  it("rejects unknown section ids, and reports the tag section as unsupported", () => {
    rejects(raw([14, []]), MalformedModuleError, 8, /section id 14/);
    rejects(raw([0xff, []]), MalformedModuleError, 8, /section id 255/);
    rejects(raw([13, [0x00]]), UnsupportedFeatureError, 8, /tag/);
  });

  it("rejects duplicate sections", () => {
    rejects(raw([1, [0]], [1, [0]]), MalformedModuleError, 11, /duplicate type section/);
    rejects(
      raw([5, [0]], [0, [0]], [5, [0]]),
      MalformedModuleError,
      14,
      /duplicate memory section/,
    );
    rejects(raw([12, [0]], [12, [0]]), MalformedModuleError, 11, /duplicate data count/);
  });

  it("rejects sections out of order, with the data count section before code", () => {
    rejects(raw([5, [0]], [4, [0]]), MalformedModuleError, 11, /table section out of order/);
    rejects(raw([10, [0]], [12, [0]]), MalformedModuleError, 11, /data count section out of order/);
    rejects(raw([11, [0]], [10, [0]]), MalformedModuleError, 11, /code section out of order/);
    rejects(raw([12, [0]], [9, [0]]), MalformedModuleError, 11, /element section out of order/);
    assert.equal(parseModule(raw([9, [0]], [12, [0]], [10, [0]], [11, [0]])).dataCount, 0);
  });

  it("rejects section contents that end before the declared size", () => {
    rejects(raw([SectionId.type, [0x00, 0x00]]), MalformedModuleError, 11, /section size mismatch/);
    rejects(raw([SectionId.start, [0x00, 0x00]]), MalformedModuleError, 10, /unknown function/);
    rejects(
      raw([SectionId.dataCount, [0x00, 0x00]]),
      MalformedModuleError,
      11,
      /section size mismatch/,
    );
  });

  it("rejects section contents that run past the declared size", () => {
    // Type section of size 3 whose function type needs 4 bytes: 01 60 00 | 00
    rejects(
      bytesOf(...HEADER, 1, 3, 0x01, 0x60, 0x00, 0x00),
      MalformedModuleError,
      13,
      /unexpected end/,
    );
  });

  it("rejects a vector count larger than the rest of the section", () => {
    rejects(raw([SectionId.type, [0x05]]), MalformedModuleError, 10, /type count 5/);
    rejects(
      raw([SectionId.type, [0xff, 0xff, 0xff, 0xff, 0x0f]]),
      MalformedModuleError,
      10,
      /count 4294967295/,
    );
    rejects(
      raw([SectionId.type, [0x01, 0x60, 0x7f]]),
      MalformedModuleError,
      12,
      /value type count 127/,
    );
    rejects(raw([SectionId.import, [0x02, 0x00]]), MalformedModuleError, 10, /import count 2/);
    rejects(raw([SectionId.code, [0x03, 0x00]]), MalformedModuleError, 10, /function body count 3/);
    rejects(
      raw([SectionId.data, [0x01, 0x01, 0x09, 0x00]]),
      MalformedModuleError,
      12,
      /data segment length 9/,
    );
    rejects(
      raw([SectionId.import, [0x01, 0xff, 0xff, 0xff, 0xff, 0x0f]]),
      MalformedModuleError,
      11,
      /unexpected end/,
    );
  });

  it("rejects invalid UTF-8 in import, export and custom section names", () => {
    rejects(
      raw([SectionId.import, [0x01, 0x01, 0xff, 0x00, 0x00, 0x00]]),
      MalformedModuleError,
      12,
      /UTF-8/,
    );
    rejects(
      raw([SectionId.export, [0x01, 0x02, 0xc0, 0x80, 0x00, 0x00]]),
      MalformedModuleError,
      12,
      /UTF-8/,
    );
    rejects(raw([0, [0x01, 0x80]]), MalformedModuleError, 11, /UTF-8/);
    rejects(raw([0, [0x05, 0x61]]), MalformedModuleError, 10, /unexpected end/);
    rejects(raw([0, []]), MalformedModuleError, 10, /unexpected end/);
  });

  it("rejects bad type forms and value types", () => {
    rejects(raw([SectionId.type, [0x01, 0x61, 0, 0]]), MalformedModuleError, 11, /type form 0x61/);
    for (const form of [0x4e, 0x4f, 0x50, 0x5e, 0x5f]) {
      rejects(raw([SectionId.type, [0x01, form, 0, 0]]), UnsupportedFeatureError, 11, /GC/);
    }
    rejects(
      raw([SectionId.type, [0x01, 0x60, 0x01, 0x7a, 0x00]]),
      MalformedModuleError,
      13,
      /value type 0x7a/,
    );
    rejects(
      raw([SectionId.type, [0x01, 0x60, 0x00, 0x01, 0x40]]),
      MalformedModuleError,
      14,
      /value type 0x40/,
    );
    rejects(raw([SectionId.type, [0x01, 0x60, 0x01, 0x64, 0x00]]), UnsupportedFeatureError, 13);
    rejects(
      raw([SectionId.type, [0x01, 0x60, 0x01, 0x6e, 0x00]]),
      UnsupportedFeatureError,
      13,
      /anyref/,
    );
  });

  it("rejects bad imports", () => {
    const imp = (...desc: number[]): Uint8Array =>
      raw([SectionId.type, [0x01, 0x60, 0, 0]], [SectionId.import, [
        0x01,
        ...name("m"),
        ...name("n"),
        ...desc,
      ]]);
    const descAt = 21;
    assert.equal(parseModule(imp(0x00, 0x00)).imports.length, 1);
    rejects(imp(0x00, 0x01), MalformedModuleError, descAt + 1, /unknown type 1/);
    rejects(imp(0x04, 0x00, 0x00), UnsupportedFeatureError, descAt, /tag/);
    rejects(imp(0x05, 0x00), MalformedModuleError, descAt, /import kind 0x05/);
    rejects(imp(0x03, 0x7f, 0x02), MalformedModuleError, descAt + 2, /mutability/);
    rejects(imp(0x01, 0x7f, 0x00, 0x00), MalformedModuleError, descAt + 1, /reference type 0x7f/);
    rejects(imp(0x01, 0x70, 0x04, 0x00), UnsupportedFeatureError, descAt + 2, /table64/);
    rejects(imp(0x01, 0x70, 0x02, 0x00, 0x00), MalformedModuleError, descAt + 2, /limits flags/);
    rejects(imp(0x02, 0x04, 0x00), UnsupportedFeatureError, descAt + 1, /memory64/);
  });

  it("checks limits", () => {
    const mem = (...lim: number[]): Uint8Array => raw([SectionId.memory, [0x01, ...lim]]);
    rejects(
      mem(...limits(2, 1)),
      MalformedModuleError,
      11,
      /minimum must not be greater than maximum/,
    );
    rejects(mem(...limits(65537, null)), MalformedModuleError, 12, /65536 pages/);
    rejects(mem(...limits(1, 65537)), MalformedModuleError, 12, /65536 pages/);
    assert.deepEqual(parseModule(mem(...limits(65536, 65536))).memories, [{
      min: 65536,
      max: 65536,
      shared: false,
    }]);
    rejects(mem(0x02, 0x01), MalformedModuleError, 11, /shared memory must have maximum/);
    for (const flags of [0x04, 0x05, 0x06, 0x07]) {
      rejects(mem(flags, 0, 0), UnsupportedFeatureError, 11, /memory64/);
    }
    rejects(mem(0x08, 0x00), MalformedModuleError, 11, /limits flags 0x08/);
    rejects(mem(0x81, 0x00), MalformedModuleError, 11, /limits flags/);
    const table = (...lim: number[]): Uint8Array => raw([SectionId.table, [0x01, 0x70, ...lim]]);
    rejects(table(...limits(10, 9)), MalformedModuleError, 12, /minimum must not be greater/);
    assert.deepEqual(parseModule(table(...limits(0xffffffff, 0xffffffff))).tables, [{
      element: "funcref",
      min: 0xffffffff,
      max: 0xffffffff,
    }]);
    rejects(table(0x05, 0, 0), UnsupportedFeatureError, 12, /table64/);
    rejects(table(0x03, 0, 0), MalformedModuleError, 12, /limits flags/);
  });

  it("checks function type indices and the code section count", () => {
    rejects(
      raw([SectionId.type, [0x01, 0x60, 0, 0]], [SectionId.function, [0x02, 0x00, 0x01]]),
      MalformedModuleError,
      18,
      /unknown type 1/,
    );
    const fnOnly = raw([SectionId.type, [0x01, 0x60, 0, 0]], [SectionId.function, [0x01, 0x00]]);
    rejects(
      fnOnly,
      MalformedModuleError,
      fnOnly.length,
      /function and code section have inconsistent lengths/,
    );
    const codeOnly = raw([SectionId.code, [0x01, 0x02, 0x00, 0x0b]]);
    rejects(codeOnly, MalformedModuleError, 8, /inconsistent lengths \(0 and 1\)/);

    // Function bodies are skipped by their sizes, which must add up to the section size.
    const code = (...payload: number[]): Uint8Array =>
      raw(
        [SectionId.type, [0x01, 0x60, 0, 0]],
        [SectionId.function, [0x01, 0x00]],
        [SectionId.code, payload],
      );
    assert.deepEqual(parseModule(code(0x01, 0x03, 0x00, 0x01, 0x0b)).functions, [0]);
    rejects(code(0x01, 0x05, 0x00, 0x0b), MalformedModuleError, 21, /function body size 5/);
    rejects(code(0x01, 0x02, 0x00, 0x0b, 0x00), MalformedModuleError, 24, /section size mismatch/);
    rejects(code(0x01, 0x80, 0x80), MalformedModuleError, 21, /unexpected end/);
  });

  it("rejects bad constant expressions in globals", () => {
    const glob = (...body: number[]): Uint8Array => raw([SectionId.global, [0x01, ...body]]);
    const exprAt = 13;
    rejects(
      glob(0x7f, 0x00, ...constExpr({ kind: "i64.const", value: 1n })),
      MalformedModuleError,
      exprAt,
      /type mismatch/,
    );
    rejects(
      glob(0x7e, 0x00, ...constExpr({ kind: "i32.const", value: 1 })),
      MalformedModuleError,
      exprAt,
      /type mismatch/,
    );
    rejects(
      glob(0x70, 0x00, ...constExpr({ kind: "ref.null", type: "externref" })),
      MalformedModuleError,
      exprAt,
      /type mismatch/,
    );
    rejects(glob(0x7f, 0x00, 0x0b), MalformedModuleError, exprAt, /empty constant expression/);
    rejects(glob(0x7f, 0x00, 0x41, 0x01), MalformedModuleError, exprAt + 2, /unexpected end/);
    rejects(
      glob(0x7f, 0x00, 0x41, 0x01, 0x41, 0x02, 0x6a, 0x0b),
      UnsupportedFeatureError,
      exprAt + 4,
      /opcode 0x6a \(extended constant/,
    );
    rejects(
      glob(0x7e, 0x00, 0x42, 0x01, 0x42, 0x02, 0x7e, 0x0b),
      UnsupportedFeatureError,
      exprAt + 4,
      /opcode 0x7e/,
    );
    rejects(
      glob(0x7f, 0x00, 0x41, 0x01, 0x41, 0x02, 0x0b),
      MalformedModuleError,
      exprAt + 2,
      /type mismatch/,
    );
    rejects(glob(0x7f, 0x00, 0x01, 0x0b), UnsupportedFeatureError, exprAt, /opcode 0x01/);
    rejects(glob(0x7f, 0x00, 0x20, 0x00, 0x0b), UnsupportedFeatureError, exprAt, /opcode 0x20/);
    rejects(glob(0x7b, 0x00, 0xfd, 0x0d, 0x0b), UnsupportedFeatureError, exprAt, /0xfd 13/);
    rejects(
      glob(0x7f, 0x00, 0x23, 0x00, 0x0b),
      MalformedModuleError,
      exprAt + 1,
      /unknown global 0/,
    );
    rejects(
      glob(0x70, 0x00, 0xd2, 0x00, 0x0b),
      MalformedModuleError,
      exprAt + 1,
      /unknown function 0/,
    );
    rejects(
      glob(0x70, 0x00, 0xd0, 0x7f, 0x0b),
      MalformedModuleError,
      exprAt + 1,
      /reference type 0x7f/,
    );
    rejects(glob(0x70, 0x00, 0xd0, 0x6e, 0x0b), UnsupportedFeatureError, exprAt + 1, /GC/);
    for (const heapType of [[0x00], [0x3f], [0x80, 0x01]]) {
      rejects(
        glob(0x70, 0x00, 0xd0, ...heapType, 0x0b),
        UnsupportedFeatureError,
        exprAt + 1,
        /typed function references/,
      );
    }
    rejects(glob(0x7f, 0x00, 0x43, 0, 0, 0), MalformedModuleError, exprAt + 1, /unexpected end/);
  });

  it("limits global.get to immutable globals defined before the global", () => {
    const withImport = (...body: number[]): Uint8Array =>
      raw(
        [SectionId.import, [0x01, ...name("m"), ...name("g"), 0x03, 0x7f, 0x01]],
        [SectionId.global, body],
      );
    const globalsAt = 20;
    // The imported global is mutable.
    rejects(
      withImport(0x01, 0x7f, 0x00, 0x23, 0x00, 0x0b),
      MalformedModuleError,
      globalsAt + 4,
      /constant expression required/,
    );
    // A global may not read itself or a later one.
    const selfRef = raw([SectionId.global, [0x01, 0x7f, 0x00, 0x23, 0x00, 0x0b]]);
    rejects(selfRef, MalformedModuleError, 14, /unknown global 0/);
    const forward = raw([SectionId.global, [
      0x02,
      0x7f,
      0x00,
      0x23,
      0x01,
      0x0b,
      0x7f,
      0x00,
      0x41,
      0x00,
      0x0b,
    ]]);
    rejects(forward, MalformedModuleError, 14, /unknown global 1/);
    // The referenced global's type must match.
    const i64Import = raw(
      [SectionId.import, [0x01, ...name("m"), ...name("g"), 0x03, 0x7e, 0x00]],
      [SectionId.global, [0x01, 0x7f, 0x00, 0x23, 0x00, 0x0b]],
    );
    rejects(
      i64Import,
      MalformedModuleError,
      globalsAt + 3,
      /type mismatch: expected i32, found i64/,
    );
  });

  it("checks export names and kinds", () => {
    const exp = (...entries: number[][]): Uint8Array =>
      raw(
        [SectionId.type, [0x01, 0x60, 0, 0]],
        [SectionId.function, [0x01, 0x00]],
        [SectionId.export, [entries.length, ...entries.flat()]],
        [SectionId.code, [0x01, 0x02, 0x00, 0x0b]],
      );
    const exportsAt = 20;
    assert.equal(
      parseModule(exp([...name("a"), 0x00, 0x00], [...name("b"), 0x00, 0x00])).exports.length,
      2,
    );
    rejects(
      exp([...name("a"), 0x00, 0x00], [...name("a"), 0x00, 0x00]),
      MalformedModuleError,
      exportsAt + 5,
      /duplicate export name "a"/,
    );
    rejects(exp([...name("a"), 0x04, 0x00]), UnsupportedFeatureError, exportsAt + 3, /tag/);
    rejects(
      exp([...name("a"), 0x07, 0x00]),
      MalformedModuleError,
      exportsAt + 3,
      /export kind 0x07/,
    );
    rejects(
      exp([...name("a"), 0x00, 0x01]),
      MalformedModuleError,
      exportsAt + 4,
      /unknown function 1/,
    );
    rejects(
      exp([...name("a"), 0x03, 0x00]),
      MalformedModuleError,
      exportsAt + 4,
      /unknown global 0/,
    );
  });

  it("checks the start function's index and type", () => {
    const spec: ModuleSpec = { types: [VOID, { params: ["i32"], results: [] }], functions: [0, 1] };
    const ok = encodeSections({ ...spec, start: 0 });
    assert.equal(parseModule(assembleModule(ok)).start, 0);
    const startIndex = ok.findIndex((s) => s.id === SectionId.start);
    const at = payloadAt(ok, startIndex);
    rejects(buildModule({ ...spec, start: 2 }), MalformedModuleError, at, /unknown function 2/);
    rejects(
      buildModule({ ...spec, start: 1 }),
      MalformedModuleError,
      at,
      /start function must have type/,
    );
  });

  it("rejects bad element segments", () => {
    const spec: ModuleSpec = { types: [VOID], functions: [0], tables: [TABLE10] };
    const elementAt = (elements: ElementSpec[]): number => {
      const sections = encodeSections({ ...spec, elements });
      return payloadAt(sections, sections.findIndex((s) => s.id === SectionId.element)) + 1;
    };
    const withSegment = (...seg: number[]): Uint8Array => {
      const sections = encodeSections({ ...spec, elements: [] });
      const i = sections.findIndex((s) => s.id === SectionId.element);
      sections[i] = { id: SectionId.element, payload: Uint8Array.from([0x01, ...seg]) };
      return assembleModule(sections);
    };
    const at = elementAt([]);
    const zero = constExpr({ kind: "i32.const", value: 0 });
    assert.equal(parseModule(withSegment(0x00, ...zero, 0x01, 0x00)).elements.length, 1);
    rejects(withSegment(0x08, 0x00), MalformedModuleError, at, /element segment flags 8/);
    rejects(withSegment(0x01, 0x01, 0x00), MalformedModuleError, at + 1, /element kind 0x01/);
    rejects(
      withSegment(0x00, ...zero, 0x01, 0x01),
      MalformedModuleError,
      at + 5,
      /unknown function 1/,
    );
    rejects(
      withSegment(0x02, 0x01, ...zero, 0x00, 0x00),
      MalformedModuleError,
      at + 1,
      /unknown table 1/,
    );
    rejects(
      withSegment(0x00, ...constExpr({ kind: "i64.const", value: 0n }), 0x00),
      MalformedModuleError,
      at + 1,
      /type mismatch/,
    );
    rejects(
      withSegment(0x06, 0x00, ...zero, 0x6f, 0x00),
      MalformedModuleError,
      at + 1,
      /type mismatch: externref element segment for a funcref table/,
    );
    rejects(
      withSegment(0x05, 0x70, 0x01, ...constExpr({ kind: "ref.null", type: "externref" })),
      MalformedModuleError,
      at + 3,
      /type mismatch/,
    );
    rejects(
      withSegment(0x05, 0x6f, 0x01, ...constExpr({ kind: "ref.func", index: 0 })),
      MalformedModuleError,
      at + 3,
      /type mismatch/,
    );
    rejects(
      withSegment(0x05, 0x70, 0x01, ...constExpr({ kind: "ref.func", index: 1 })),
      MalformedModuleError,
      at + 4,
      /unknown function 1/,
    );
    rejects(
      withSegment(0x05, 0x70, 0x01, ...constExpr({ kind: "i32.const", value: 0 })),
      MalformedModuleError,
      at + 3,
      /type mismatch/,
    );
    rejects(withSegment(0x05, 0x7f, 0x00), MalformedModuleError, at + 1, /reference type 0x7f/);
    // Element expressions with global.get are valid WebAssembly but cannot be represented.
    const viaGlobal = buildModule({
      imports: [{
        module: "m",
        name: "g",
        desc: { kind: "global", type: { type: "funcref", mutable: false } },
      }],
    });
    const sections = encodeSections({
      imports: [{
        module: "m",
        name: "g",
        desc: { kind: "global", type: { type: "funcref", mutable: false } },
      }],
    });
    sections.push({
      id: SectionId.element,
      payload: Uint8Array.from([0x01, 0x05, 0x70, 0x01, 0x23, 0x00, 0x0b]),
    });
    const withGlobalGet = assembleModule(sections);
    assert.ok(engineAccepts(withGlobalGet));
    rejects(
      withGlobalGet,
      UnsupportedFeatureError,
      viaGlobal.length + 2 + 4,
      /global.get in an element expression/,
    );
    // Forms 0 and 4 need table 0.
    const noTable = raw([SectionId.element, [0x01, 0x00, ...zero, 0x00]]);
    rejects(noTable, MalformedModuleError, 11, /unknown table 0/);
  });

  it("rejects bad data segments and data counts", () => {
    const zero = constExpr({ kind: "i32.const", value: 0 });
    const data = (...seg: number[]): Uint8Array =>
      raw([SectionId.memory, [0x01, 0x00, 0x01]], [SectionId.data, [0x01, ...seg]]);
    const at = 15 + 1;
    assert.equal(parseModule(data(0x02, 0x00, ...zero, 0x00)).data.length, 1);
    rejects(data(0x03, 0x00), MalformedModuleError, at, /data segment flags 3/);
    rejects(data(0x02, 0x01, ...zero, 0x00), MalformedModuleError, at + 1, /unknown memory 1/);
    rejects(
      data(0x00, ...constExpr({ kind: "f32.const", value: 0 }), 0x00),
      MalformedModuleError,
      at + 1,
      /type mismatch/,
    );
    rejects(
      raw([SectionId.data, [0x01, 0x00, ...zero, 0x00]]),
      MalformedModuleError,
      11,
      /unknown memory 0/,
    );
    assert.equal(parseModule(raw([SectionId.data, [0x01, 0x01, 0x00]])).data.length, 1);
    const mismatch = raw([SectionId.dataCount, [0x02]], [SectionId.data, [0x01, 0x01, 0x00]]);
    rejects(
      mismatch,
      MalformedModuleError,
      11,
      /data count and data section have inconsistent lengths \(2 and 1\)/,
    );
    const countOnly = raw([SectionId.dataCount, [0x01]]);
    rejects(countOnly, MalformedModuleError, countOnly.length, /inconsistent lengths \(1 and 0\)/);
  });

  it("never preallocates by a count: huge counts fail fast", () => {
    const huge = [0xff, 0xff, 0xff, 0xff, 0x0f];
    for (const id of [1, 2, 3, 4, 5, 6, 7, 9, 10, 11]) {
      rejects(raw([id, huge]), MalformedModuleError, 10, /count 4294967295/);
    }
    rejects(
      raw([SectionId.type, [0x01, 0x60, ...huge]]),
      MalformedModuleError,
      12,
      /count 4294967295/,
    );
  });
});

describe("parseModule: robustness", () => {
  it("rejects every truncation of a valid module with MalformedModuleError", () => {
    const sections = encodeSections(FULL);
    const bytes = assembleModule(sections);
    // Cuts at a section boundary leave a shorter, possibly valid, module.
    const boundaries = new Set<number>();
    for (let k = 0; k <= sections.length; k++) {
      boundaries.add(assembleModule(sections.slice(0, k)).length);
    }
    let malformed = 0;
    for (let length = 0; length < bytes.length; length++) {
      const prefix = bytes.slice(0, length);
      try {
        parseModule(prefix);
        assert.ok(boundaries.has(length), `a cut at ${length} parsed`);
      } catch (e) {
        assert.ok(e instanceof MalformedModuleError, `cut at ${length}: ${String(e)}`);
        assert.ok(e.offset <= length, `cut at ${length}: offset ${e.offset}`);
        malformed++;
      }
    }
    assert.ok(malformed >= bytes.length - boundaries.size);
    // The sections of FULL depend on each other: only the header and the cut after the
    // type and import sections make complete modules.
    assert.equal(malformed, bytes.length - 3);
  });

  it("survives seeded random bit flips with only wasmpool errors", () => {
    const bytes = buildModule(FULL);
    const random = xorshift32(0x2545f491);
    const outcomes = { parsed: 0, malformed: 0, unsupported: 0 };
    for (let i = 0; i < 2000; i++) {
      const mutated = bytes.slice();
      const flips = 1 + (random() % 3);
      for (let f = 0; f < flips; f++) {
        const bit = random() % (mutated.length * 8);
        mutated[bit >>> 3] ^= 1 << (bit & 7);
      }
      const outcome = parseOutcome(mutated, i);
      outcomes[outcome]++;
      if (outcome === "malformed") {
        assert.ok(!WebAssembly.validate(mutated), `mutation ${i} is valid for the engine`);
      }
    }
    assert.ok(outcomes.malformed > 1000, JSON.stringify(outcomes));
    assert.ok(outcomes.parsed > 0, JSON.stringify(outcomes));
  });

  it("survives seeded random byte edits with only wasmpool errors", () => {
    const bytes = buildModule(FULL);
    const random = xorshift32(7);
    for (let i = 0; i < 2000; i++) {
      const at = random() % bytes.length;
      const mutated = new Uint8Array(bytes.length + 1);
      switch (random() % 3) {
        case 0: // replace
          mutated.set(bytes);
          mutated[at] = random() & 0xff;
          parseOutcome(mutated.subarray(0, bytes.length), i);
          break;
        case 1: // insert
          mutated.set(bytes.subarray(0, at));
          mutated[at] = random() & 0xff;
          mutated.set(bytes.subarray(at), at + 1);
          parseOutcome(mutated, i);
          break;
        default: // delete
          mutated.set(bytes.subarray(0, at));
          mutated.set(bytes.subarray(at + 1), at);
          parseOutcome(mutated.subarray(0, bytes.length - 1), i);
      }
    }
  });

  it("survives random bytes after a valid header", () => {
    const random = xorshift32(99);
    for (let i = 0; i < 2000; i++) {
      const length = random() % 64;
      const mutated = new Uint8Array(HEADER.length + length);
      mutated.set(HEADER);
      for (let j = HEADER.length; j < mutated.length; j++) mutated[j] = random() & 0xff;
      parseOutcome(mutated, i);
    }
  });

  it("parses a large module in linear time", () => {
    const segments = 100_000;
    const indices = 500_000;
    const big = new Uint8Array(32 * 1024 * 1024);
    const bytes = buildModule({
      types: [VOID],
      functions: Array<number>(1000).fill(0),
      tables: [{ element: "funcref", min: indices, max: null }],
      memories: [{ min: 1024, max: null, shared: false }],
      elements: [{ mode: "active", elements: Array.from({ length: indices }, (_, i) => i % 1000) }],
      data: [
        { mode: "active", data: big },
        ...Array.from({ length: segments }, (_, i) => ({
          mode: "passive" as const,
          data: Uint8Array.of(i & 0xff, 1, 2),
        })),
      ],
    });
    const started = performance.now();
    const module = parseModule(bytes);
    const elapsed = performance.now() - started;
    assert.equal(module.data.length, segments + 1);
    assert.equal(module.data[0].data.length, big.length);
    assert.equal(module.elements[0].elements.length, indices);
    assert.ok(elapsed < 5000, `took ${elapsed} ms`);
  });
});

/** Parses `bytes` and classifies the outcome; fails on any error but a wasmpool one. */
function parseOutcome(bytes: Uint8Array, i: number): "parsed" | "malformed" | "unsupported" {
  try {
    parseModule(bytes);
    return "parsed";
  } catch (e) {
    assert.ok(e instanceof WasmpoolError, `mutation ${i}: ${String(e)}`);
    if (e instanceof MalformedModuleError) {
      assert.ok(e.offset >= 0 && e.offset <= bytes.length, `mutation ${i}: offset ${e.offset}`);
      return "malformed";
    }
    assert.ok(e instanceof UnsupportedFeatureError, `mutation ${i}: ${String(e)}`);
    return "unsupported";
  }
}

/** A deterministic xorshift32 generator of unsigned 32-bit integers. */
function xorshift32(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
}
