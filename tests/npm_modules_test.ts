/**
 * Checks the real-world fixture modules from npm (see `tests/fixtures/npm_modules.ts`): each is
 * installed at its pinned version, compiles, instantiates with stub imports and no host, and
 * declares what the fixture list says. Runs unchanged under `deno test` and `bun test`.
 *
 * @module
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  dataSegments,
  definedLimits,
  installedVersion,
  readRealModule,
  realModules,
  sectionCount,
  stubImports,
  wasmSections,
} from "./fixtures/npm_modules.ts";

const PAGE = 65536;

describe("real modules from npm", () => {
  const modules = realModules();

  it("lists at least three modules, each from its own package", () => {
    assert.ok(modules.length >= 3);
    assert.equal(new Set(modules.map((m) => m.package)).size, modules.length);
  });

  for (const m of modules) {
    describe(`${m.name} (${m.package}@${m.version}, ${m.file})`, () => {
      it("is installed at the version pinned in script/bootstrap", () => {
        assert.equal(installedVersion(m), m.version, "run script/bootstrap");
      });

      it("declares the expected memory, table, segments and imports", () => {
        const bytes = readRealModule(m);
        const f = m.facts;
        assert.equal(wasmSections(bytes).some((s) => s.id === 8), false, "has a start section");
        assert.deepEqual(definedLimits(bytes, "memory"), { min: f.memoryMin, max: f.memoryMax });
        assert.deepEqual(definedLimits(bytes, "table"), { min: f.tableMin, max: f.tableMax });
        assert.equal(sectionCount(bytes, 9), f.elementSegments);
        assert.equal(sectionCount(bytes, 2), f.functionImports);
        const segments = dataSegments(bytes);
        assert.equal(segments.length, f.dataSegments);
        assert.ok(segments.every((s) => s.offset !== null), "has a passive data segment");
        assert.equal(segments.reduce((n, s) => n + s.bytes.length, 0), f.dataBytes);
      });

      it("compiles and instantiates with stub imports", () => {
        const bytes = readRealModule(m);
        const module = new WebAssembly.Module(bytes);
        const imports = WebAssembly.Module.imports(module);
        assert.equal(imports.length, m.facts.functionImports);
        assert.ok(imports.every((i) => i.kind === "function"));
        const exports = WebAssembly.Module.exports(module);
        assert.ok(exports.some((e) => e.kind === "memory" && e.name === m.facts.memoryExport));

        const instance = new WebAssembly.Instance(module, stubImports(module));
        const memory = instance.exports[m.facts.memoryExport];
        assert.ok(memory instanceof WebAssembly.Memory);
        assert.equal(memory.buffer.byteLength, m.facts.memoryMin * PAGE);
        if (m.facts.tableExport !== null) {
          const table = instance.exports[m.facts.tableExport];
          assert.ok(table instanceof WebAssembly.Table);
          assert.equal(table.length, m.facts.tableMin);
        }

        // No start function ran, so the initial memory is the data image over zeros.
        const expected = new Uint8Array(memory.buffer.byteLength);
        for (const s of dataSegments(bytes)) if (s.offset !== null) expected.set(s.bytes, s.offset);
        const actual = new Uint8Array(memory.buffer);
        const first = actual.findIndex((b, i) => b !== expected[i]);
        assert.equal(first, -1, `memory differs from the data image at byte ${first}`);
      });
    });
  }
});

/** Encodes `n` as unsigned LEB128. */
function leb(n: number): number[] {
  const out: number[] = [];
  do {
    const b = n & 0x7f;
    n >>>= 7;
    out.push(n === 0 ? b : b | 0x80);
  } while (n !== 0);
  return out;
}

function section(id: number, contents: number[]): number[] {
  return [id, ...leb(contents.length), ...contents];
}

function name(s: string): number[] {
  const bytes = [...new TextEncoder().encode(s)];
  return [...leb(bytes.length), ...bytes];
}

describe("stubImports", () => {
  // (import "env" "f" (func)) (import "env" "m" (memory 1 2))
  // (import "env" "t" (table 3 funcref)) (import "env" "g" (global i64))
  const bytes = new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [1, 0x60, 0, 0]),
    ...section(2, [
      4,
      ...name("env"),
      ...name("f"),
      0,
      0,
      ...name("env"),
      ...name("m"),
      2,
      1,
      1,
      2,
      ...name("env"),
      ...name("t"),
      1,
      0x70,
      0,
      3,
      ...name("env"),
      ...name("g"),
      3,
      0x7e,
      0,
    ]),
  ]);
  const module = new WebAssembly.Module(bytes);

  it("creates tables, memories and globals as the import section declares", () => {
    const imports = stubImports(module, bytes);
    new WebAssembly.Instance(module, imports);
    const env = imports.env;
    const memory = env.m;
    assert.ok(memory instanceof WebAssembly.Memory);
    assert.equal(memory.buffer.byteLength, PAGE);
    const table = env.t;
    assert.ok(table instanceof WebAssembly.Table);
    assert.equal(table.length, 3);
    const global = env.g;
    assert.ok(global instanceof WebAssembly.Global);
    assert.equal(global.value, 0n);
    const f = env.f;
    assert.equal(typeof f, "function");
    assert.throws(() => (f as () => void)(), /stub import env\.f called/);
  });

  it("needs the bytes for imports other than functions", () => {
    assert.throws(() => stubImports(module), /pass its bytes/);
  });
});
