/**
 * Tests of the function body decoder (`src/module/code.ts`). Runs under `deno test` and
 * `bun test`.
 *
 * The oracle is wabt's `wasm-objdump -d` (see `tests/fixtures/wabt.ts`): every instruction of the
 * real npm modules and of the WAT fixtures in `tests/fixtures/code/` (one per opcode group) must
 * decode to the offset, length, nesting depth, mnemonic and immediates wabt lists, and each
 * fixture must be accepted by the runtime's own `WebAssembly.Module` where the runtime enables its
 * feature. GC instructions, which wabt does not know, and encodings wabt never emits are checked
 * on a module assembled byte by byte (`fixtures/hand_built_code.ts`) against hand-computed
 * expectations, and the runtime must accept that module too.
 *
 * @module
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  type CodeSectionExtent,
  type FunctionBody,
  InstructionReader,
  MAX_FUNCTION_LOCALS,
  moduleFunctionBodies,
  readFunctionBodies,
} from "../src/module/code.ts";
import { ArgumentError, MalformedModuleError, UnsupportedFeatureError } from "../src/errors.ts";
import { parseModule } from "../src/module/parse.ts";
import { Op, OPCODE_NAMES, opcodeName } from "../src/module/opcodes.ts";
import { prng } from "./fixtures/prng.ts";
import { assembleModule, HEADER, SectionId, u32 } from "./fixtures/wasm_builder.ts";
import { HAND_FUNCTIONS, handBuiltModule } from "./fixtures/hand_built_code.ts";
import { readRealModule, realModules, wasmSections } from "./fixtures/npm_modules.ts";
import { objdumpText, valueTypeText } from "./fixtures/objdump_text.ts";
import {
  assembleWat,
  forEachOracleLine,
  objdumpOracle,
  readBootstrapOracle,
} from "./fixtures/wabt.ts";

/** The runtime running the tests. */
const RUNTIME: "deno" | "bun" = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined"
  ? "bun"
  : "deno";

/** A WAT fixture of `tests/fixtures/code/` and which runtimes accept it by default. */
interface WatFixture {
  readonly file: string;
  readonly accepted: { readonly deno: boolean; readonly bun: boolean };
}

const WAT_FIXTURES: readonly WatFixture[] = [
  { file: "mvp.wat", accepted: { deno: true, bun: true } },
  { file: "bulk_ref.wat", accepted: { deno: true, bun: true } },
  { file: "simd.wat", accepted: { deno: true, bun: true } },
  { file: "threads.wat", accepted: { deno: true, bun: true } },
  { file: "exceptions.wat", accepted: { deno: true, bun: true } },
  { file: "exceptions_legacy.wat", accepted: { deno: true, bun: true } },
  { file: "typed_refs.wat", accepted: { deno: true, bun: true } },
  // Bun 1.4.5 does not enable memory64; Deno 2.9.6 does not enable wide arithmetic.
  { file: "memory64.wat", accepted: { deno: true, bun: false } },
  { file: "wide_arithmetic.wat", accepted: { deno: false, bun: true } },
];

/** The code section of a module, found by its framing alone (the parser refuses some fixtures). */
function codeSection(bytes: Uint8Array): CodeSectionExtent {
  const section = wasmSections(bytes).find((s) => s.id === 10);
  assert.ok(section !== undefined, "the module has no code section");
  return { start: section.start, end: section.start + section.size };
}

/** Whether the runtime's own WebAssembly compiles `bytes`. */
function runtimeAccepts(bytes: Uint8Array<ArrayBuffer>): boolean {
  try {
    new WebAssembly.Module(bytes);
    return true;
  } catch {
    return false;
  }
}

/** What a comparison with the oracle covered. */
interface Agreement {
  readonly functions: number;
  readonly instructions: number;
  /** Instructions whose immediates were compared too (not only the mnemonic). */
  readonly withImmediates: number;
  /** How many instructions of each mnemonic were seen. */
  readonly mnemonics: Map<string, number>;
}

/**
 * Decodes every body of `bytes` and checks each local declaration and instruction against the
 * oracle, in order; the first disagreement fails with the oracle line and what was decoded.
 */
function agreeWithOracle(bytes: Uint8Array, oracle: string): Agreement {
  const bodies = readFunctionBodies(bytes, codeSection(bytes));
  let body: FunctionBody | null = null;
  let bodyIndex = -1;
  let reader: InstructionReader | null = null;
  let groups: { count: number; type: string }[] = [];
  let nextInstructionAt = 0;
  let instructions = 0;
  let withImmediates = 0;
  const mnemonics = new Map<string, number>();

  const finishBody = (): void => {
    if (reader === null || body === null) return;
    assert.equal(groups.length, 0, `function ${bodyIndex}: objdump lists fewer locals`);
    assert.equal(nextInstructionAt, body.end, `function ${bodyIndex} ends elsewhere`);
    assert.equal(reader.next(), null, `function ${bodyIndex}: decoded past the final end`);
  };

  forEachOracleLine(oracle, (line, n) => {
    const where = (): string => `oracle line ${n} (offset 0x${line.offset.toString(16)})`;
    switch (line.kind) {
      case "F": {
        finishBody();
        bodyIndex++;
        body = bodies[bodyIndex];
        assert.ok(body !== undefined, `${where()}: objdump lists more bodies than the decoder`);
        assert.equal(body.start, line.offset, `${where()}: body ${bodyIndex} starts elsewhere`);
        reader = new InstructionReader(bytes, body);
        groups = body.locals.filter((g) => g.count > 0).map((g) => ({
          count: g.count,
          type: valueTypeText(g.type),
        }));
        nextInstructionAt = body.localsEnd;
        break;
      }
      case "L": {
        const match = /^local\[(\d+)(?:\.\.(\d+))?\] type=(.*)$/.exec(line.text);
        assert.ok(match !== null, `${where()}: unexpected local text ${line.text}`);
        const count = match[2] === undefined ? 1 : Number(match[2]) - Number(match[1]) + 1;
        const group = groups.shift();
        assert.deepEqual(group, { count, type: match[3] }, `${where()}: ${line.text}`);
        break;
      }
      case "I": {
        if (reader === null) assert.fail(`${where()}: instruction outside a function`);
        const ins = reader.next();
        if (ins === null) assert.fail(`${where()}: the decoder ended the body before ${line.text}`);
        const { text, immediates } = objdumpText(ins);
        // objdump names functions and globals after their indices: `call 4 <env.f>`.
        const expected = line.text.includes("  ") || line.text.includes("<") ||
            line.text.endsWith(" ")
          ? line.text.replace(/ <[^<>]*>/g, "").replace(/ +/g, " ").trim()
          : line.text;
        const space = expected.indexOf(" ");
        const mnemonic = space < 0 ? expected : expected.slice(0, space);
        const agrees = ins.start === line.offset && ins.start === nextInstructionAt &&
          ins.end - ins.start === line.length && ins.depth === line.depth &&
          (immediates ? text === expected : opcodeName(ins.opcode) === mnemonic);
        if (!agrees) {
          assert.fail(
            `${where()}: objdump lists ${line.length} bytes at depth ${line.depth}: ${line.text}\n` +
              `decoded ${ins.end - ins.start} bytes at 0x${ins.start.toString(16)}, depth ` +
              `${ins.depth}: ${text}${immediates ? "" : " (mnemonic only)"}; the previous ` +
              `instruction ended at 0x${nextInstructionAt.toString(16)}`,
          );
        }
        if (immediates) withImmediates++;
        mnemonics.set(mnemonic, (mnemonics.get(mnemonic) ?? 0) + 1);
        nextInstructionAt = ins.end;
        instructions++;
        break;
      }
    }
  });
  finishBody();
  assert.equal(bodyIndex + 1, bodies.length, "objdump lists fewer bodies than the decoder");
  return { functions: bodies.length, instructions, withImmediates, mnemonics };
}

describe("function body decoder against wasm-objdump", () => {
  for (const fixture of WAT_FIXTURES) {
    it(`agrees on every instruction of ${fixture.file}`, () => {
      const bytes = assembleWat(fixture.file);
      assert.equal(runtimeAccepts(bytes), fixture.accepted[RUNTIME], "runtime acceptance");
      const agreement = agreeWithOracle(bytes, objdumpOracle(bytes));
      assert.ok(agreement.instructions > 20, "the fixture decodes to few instructions");
    });
  }

  it("sees every mnemonic of the instruction set in the WAT fixtures, except GC", () => {
    const seen = new Set<string>();
    for (const fixture of WAT_FIXTURES) {
      const bytes = assembleWat(fixture.file);
      for (const name of agreeWithOracle(bytes, objdumpOracle(bytes)).mnemonics.keys()) {
        seen.add(name);
      }
    }
    // The GC instructions (0xFB) and ref.eq are in the hand-built module (see below).
    const isGc = (op: number): boolean => (op >= 0xfb000 && op < 0xfc000) || op === 0xd3;
    const missing = [...OPCODE_NAMES].filter(([op, name]) => !isGc(op) && !seen.has(name));
    assert.deepEqual(missing, []);
  });

  for (const m of realModules()) {
    // esbuild's 4.7 million instructions take seconds; the timeout is a safety net (Bun's default
    // is 5 s), not a timing assertion.
    const title = `agrees on every instruction of ${m.name} (${m.package}@${m.version})`;
    it(title, { timeout: 300_000 }, () => {
      const bytes = readRealModule(m);
      const parsed = parseModule(bytes);
      assert.ok(parsed.code !== null);
      assert.deepEqual(parsed.code, codeSection(bytes));
      const module = `${m.package}/${m.file}`;
      const agreement = agreeWithOracle(bytes, readBootstrapOracle(module));
      assert.equal(agreement.functions, parsed.functions.length);
      assert.ok(agreement.instructions > 100_000, `${agreement.instructions} instructions`);
    });
  }
});

describe("function body decoder on a hand-built module", () => {
  const bytes = handBuiltModule();

  it("is a module the runtime accepts", () => {
    new WebAssembly.Module(bytes);
  });

  it("decodes every instruction to its hand-computed offsets, immediates and depth", () => {
    const bodies = readFunctionBodies(bytes, codeSection(bytes));
    assert.equal(bodies.length, HAND_FUNCTIONS.length);
    for (const [i, f] of HAND_FUNCTIONS.entries()) {
      const body = bodies[i];
      assert.equal(body.localsEnd - body.start, f.locals.length, `${f.name}: locals`);
      const reader = new InstructionReader(bytes, body);
      let at = body.localsEnd;
      for (const [n, expected] of f.instructions.entries()) {
        const where = `${f.name} instruction ${n} (${expected.name} at ${at})`;
        const ins = reader.next();
        assert.ok(ins !== null, `${where}: the decoder ended early`);
        assert.equal(opcodeName(ins.opcode), expected.name, where);
        assert.equal(ins.start, at, where);
        assert.equal(ins.end, at + expected.bytes.length, where);
        assert.equal(ins.depth, expected.depth, `${where}: depth`);
        for (const [field, value] of Object.entries(expected.fields)) {
          assert.deepEqual(
            (ins as unknown as Record<string, unknown>)[field],
            value,
            `${where}: ${field}`,
          );
        }
        at = ins.end;
      }
      assert.equal(at, body.end, `${f.name}: ends elsewhere`);
      assert.equal(reader.next(), null);
    }
  });

  it("covers every GC instruction", () => {
    const seen = new Set(HAND_FUNCTIONS.flatMap((f) => f.instructions.map((i) => i.name)));
    const gc = [...OPCODE_NAMES].filter(([op]) => op >= 0xfb000 && op < 0xfc000);
    assert.deepEqual(gc.filter(([, name]) => !seen.has(name)), []);
    assert.ok(seen.has("ref.eq"));
  });

  it("reads the GC function's reference-typed locals", () => {
    const [gc] = readFunctionBodies(bytes, codeSection(bytes));
    assert.equal(gc.localCount, 21);
    assert.deepEqual(gc.locals.slice(0, 2), [
      { count: 1, type: { code: 0x63, heapType: 0 } },
      { count: 1, type: { code: 0x63, heapType: 1 } },
    ]);
    assert.deepEqual(gc.locals[6], { count: 1, type: { code: 0x6e, heapType: null } });
    assert.deepEqual(gc.locals[16], { count: 1, type: { code: 0x64, heapType: 0 } });
    assert.deepEqual(gc.locals[20], { count: 1, type: { code: 0x63, heapType: -18 } });
  });
});

// ---- Small modules for the limits and errors ---------------------------------------------------

/** A module of one function `(param i32 x params)` with raw local declarations and code. */
function oneFunction(
  code: readonly number[],
  options: { params?: number; locals?: readonly number[] } = {},
): { bytes: Uint8Array<ArrayBuffer>; body: FunctionBody } {
  const params = options.params ?? 0;
  const locals = options.locals ?? [0x00];
  const body = [...locals, ...code];
  const sections: [number, number[]][] = [
    [SectionId.type, [0x01, 0x60, ...u32(params), ...new Array<number>(params).fill(0x7f), 0x00]],
    [SectionId.function, [0x01, 0x00]],
    [SectionId.memory, [0x01, 0x00, 0x01]],
    [SectionId.code, [0x01, ...u32(body.length), ...body]],
  ];
  const bytes = assembleModule(
    sections.map(([id, payload]) => ({ id, payload: Uint8Array.from(payload) })),
  );
  const [only] = readFunctionBodies(bytes, codeSection(bytes));
  return { bytes, body: only };
}

/** Decodes a whole body, returning how many instructions it has and the largest depth seen. */
function decodeAll(bytes: Uint8Array, body: Pick<FunctionBody, "localsEnd" | "end">): {
  count: number;
  maxDepth: number;
} {
  const reader = new InstructionReader(bytes, body);
  let count = 0;
  let maxDepth = 0;
  for (let ins = reader.next(); ins !== null; ins = reader.next()) {
    count++;
    if (ins.depth > maxDepth) maxDepth = ins.depth;
  }
  return { count, maxDepth };
}

type ErrorClass = typeof MalformedModuleError | typeof UnsupportedFeatureError;

/** Asserts `fn` throws `cls` at the absolute `offset`, with a message matching `message`. */
function throwsAt(fn: () => unknown, cls: ErrorClass, offset: number, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    assert.equal(e.offset, offset, `wrong offset in "${e.message}"`);
    assert.match(e.message, message);
    return true;
  });
}

/** Asserts decoding `code` (in a one-function module) throws `cls` at `code[at]`. */
function rejectsCode(code: readonly number[], cls: ErrorClass, at: number, message: RegExp): void {
  const { bytes, body } = oneFunction(code);
  throwsAt(() => decodeAll(bytes, body), cls, body.localsEnd + at, message);
}

describe("function bodies and local declarations", () => {
  it("counts parameters and locals against the runtimes' limit of 50,000", () => {
    const cases = [
      { params: 0, locals: [0x01, ...u32(50_000), 0x7f], ok: true },
      { params: 0, locals: [0x01, ...u32(50_001), 0x7f], ok: false },
      { params: 1, locals: [0x01, ...u32(49_999), 0x7f], ok: true },
      { params: 1, locals: [0x01, ...u32(50_000), 0x7f], ok: false },
      { params: 0, locals: [0x02, ...u32(49_999), 0x7f, 0x01, 0x7e], ok: true },
      { params: 2, locals: [0x02, ...u32(49_997), 0x7f, 0x01, 0x7e], ok: true },
      { params: 0, locals: [0x02, ...u32(50_000), 0x7f, 0x01, 0x7e], ok: false },
      { params: 0, locals: [0x02, ...u32(0xffffffff), 0x7f, ...u32(0xffffffff), 0x7e], ok: false },
    ];
    assert.equal(MAX_FUNCTION_LOCALS, 50_000);
    for (const c of cases) {
      const bytes = oneFunctionBytes(c.locals, c.params);
      assert.equal(runtimeAccepts(bytes), c.ok, `runtime, ${JSON.stringify(c)}`);
      const parsed = parseModule(bytes);
      if (c.ok) {
        const [body] = moduleFunctionBodies(bytes, parsed);
        assert.equal(body.localCount + c.params, MAX_FUNCTION_LOCALS);
      } else {
        assert.throws(
          () => moduleFunctionBodies(bytes, parsed),
          (e: unknown) =>
            e instanceof MalformedModuleError && /exceeds the limit of 50000/.test(e.message),
        );
      }
    }
  });

  it("reads local groups, including empty ones, and where the code starts", () => {
    const { bytes, body } = oneFunction([0x0b], {
      locals: [0x04, 0x00, 0x7f, 0x02, 0x7e, 0x01, 0x63, 0x70, 0x80, 0x01, 0x7b],
    });
    assert.ok(runtimeAccepts(bytes));
    assert.deepEqual(body.locals, [
      { count: 0, type: { code: 0x7f, heapType: null } },
      { count: 2, type: { code: 0x7e, heapType: null } },
      { count: 1, type: { code: 0x63, heapType: -16 } },
      { count: 128, type: { code: 0x7b, heapType: null } },
    ]);
    assert.equal(body.localCount, 131);
    assert.equal(body.localsEnd, body.end - 1);
    assert.equal(bytes[body.sizeAt], body.end - body.start);
  });

  it("rejects bodies that do not fit the section, and bad local declarations", () => {
    const code = (payload: number[]): Uint8Array<ArrayBuffer> =>
      assembleModule([{ id: SectionId.code, payload: Uint8Array.from(payload) }]);
    const at = HEADER.length + 2;
    const list = (bytes: Uint8Array): unknown => readFunctionBodies(bytes, codeSection(bytes));
    throwsAt(() => list(code([0x02, 0x02, 0x00, 0x0b])), MalformedModuleError, at + 4, /end/);
    throwsAt(() => list(code([0x01, 0x05, 0x00, 0x0b])), MalformedModuleError, at + 1, /size 5/);
    throwsAt(() => list(code([0x05, 0x00])), MalformedModuleError, at, /count 5 exceeds/);
    throwsAt(
      () => list(code([0x01, 0x02, 0x00, 0x0b, 0x00])),
      MalformedModuleError,
      at + 4,
      /mismatch/,
    );
    throwsAt(() => list(code([0x01, 0x01, 0x05])), MalformedModuleError, at + 2, /count 5 exceeds/);
    throwsAt(
      () => list(code([0x01, 0x03, 0x01, 0x01, 0x7a])),
      MalformedModuleError,
      at + 4,
      /0x7a/,
    );
    throwsAt(
      () => list(code([0x01, 0x03, 0x01, 0x01, 0x63])),
      MalformedModuleError,
      at + 5,
      /unexpected end/,
    );
    throwsAt(
      () => list(code([0x01, 0x04, 0x01, 0x01, 0x65, 0x70])),
      UnsupportedFeatureError,
      at + 4,
      /shared/,
    );
  });
});

/** The bytes of a one-function module with the given raw local declarations and parameters. */
function oneFunctionBytes(locals: readonly number[], params: number): Uint8Array<ArrayBuffer> {
  const body = [...locals, 0x0b];
  const sections: [number, number[]][] = [
    [SectionId.type, [0x01, 0x60, ...u32(params), ...new Array<number>(params).fill(0x7f), 0x00]],
    [SectionId.function, [0x01, 0x00]],
    [SectionId.code, [0x01, ...u32(body.length), ...body]],
  ];
  return assembleModule(
    sections.map(([id, payload]) => ({ id, payload: Uint8Array.from(payload) })),
  );
}

describe("instruction reader", () => {
  it("reports the frame a label refers to", () => {
    // block / loop / if (else) / try_table, with a br at each level.
    const code = [
      0x02,
      0x40, // block
      0x03,
      0x40, // loop
      0x41,
      0x00,
      0x04,
      0x40, // if
      0x0c,
      0x00, // br 0 (the if)
      0x05, // else
      0x0c,
      0x01, // br 1 (the loop)
      0x0b,
      0x1f,
      0x40,
      0x01,
      0x02,
      0x01, // try_table (catch_all 1): label 1 = the loop, outside
      0x0c,
      0x03, // br 3: past the try_table, the loop and the block, the function
      0x0b,
      0x0b,
      0x0b,
      0x0b,
    ];
    const { bytes, body } = oneFunction(code);
    assert.ok(runtimeAccepts(bytes));
    const reader = new InstructionReader(bytes, body);
    const kinds: string[] = [];
    for (let ins = reader.next(); ins !== null; ins = reader.next()) {
      if (ins.opcode === Op.br) kinds.push(`br ${ins.label}: ${ins.frameKind(ins.label)}`);
      if (ins.opcode === Op.try_table) {
        kinds.push(`catch ${ins.catches[0].label}: ${ins.frameKind(ins.catches[0].label)}`);
        assert.equal(ins.frameKind(2), "function");
        assert.throws(() => ins.frameKind(3), ArgumentError);
      }
    }
    assert.deepEqual(kinds, ["br 0: if", "br 1: loop", "catch 1: block", "br 3: function"]);

    // A delegate's label counts from the frame around its try; JavaScriptCore accepts the
    // fixture, and it requires every delegate to target a try or the caller.
    const legacy = assembleWat("exceptions_legacy.wat");
    const delegates: string[] = [];
    for (const b of readFunctionBodies(legacy, codeSection(legacy))) {
      const r = new InstructionReader(legacy, b);
      for (let ins = r.next(); ins !== null; ins = r.next()) {
        if (ins.opcode === Op.delegate) delegates.push(ins.frameKind(ins.label));
      }
    }
    assert.deepEqual(delegates, ["try", "try", "function"]);
  });

  it("gives constants, v128 bytes and exact 64-bit memarg offsets", () => {
    const bytes = assembleWat("memory64.wat");
    const [body] = readFunctionBodies(bytes, codeSection(bytes));
    const offsets: bigint[] = [];
    const reader = new InstructionReader(bytes, body);
    for (let ins = reader.next(); ins !== null; ins = reader.next()) {
      if (ins.opcode >= 0x28 && ins.opcode <= 0x3e || ins.opcode === 0xfd000) {
        offsets.push(ins.memargOffset());
        if (ins.memargOffset() < 2n ** 53n) assert.equal(BigInt(ins.offset), ins.memargOffset());
      }
    }
    assert.deepEqual(offsets, [
      0n,
      4294967296n,
      18446744073709551615n,
      9007199254740993n,
      1099511627776n,
      4294967295n,
      72057594037927936n,
    ]);
    const mvp = assembleWat("mvp.wat");
    // The fifth body is $constants.
    const consts = new InstructionReader(mvp, readFunctionBodies(mvp, codeSection(mvp))[4]);
    const values: unknown[] = [];
    for (let ins = consts.next(); ins !== null; ins = consts.next()) {
      if (ins.opcode === 0x41) values.push(ins.i32Value);
      if (ins.opcode === 0x42) values.push(ins.i64Value());
      if (ins.opcode === 0x43) values.push(ins.f32Value());
      if (ins.opcode === 0x44) values.push(ins.f64Value());
    }
    assert.deepEqual(values.slice(0, 8), [0, -1, 63, 64, -64, -65, 2147483647, -2147483648]);
    assert.deepEqual(values.slice(8, 13), [0n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 32n]);
    assert.deepEqual(values.slice(13, 16), [0, -0, 1.5]);
    assert.ok(Number.isNaN(values[16]));
    assert.equal(values[17], -Infinity);
    assert.equal(values[20], -1e300);
    assert.equal(values[22], Infinity);
    const { bytes: v, body: vb } = oneFunction([
      0xfd,
      0x0c,
      ...Array.from({ length: 16 }, (_, i) => i * 17),
      0x1a,
      0x0b,
    ]);
    const vr = new InstructionReader(v, vb);
    assert.deepEqual([...vr.next()!.v128Bytes()], Array.from({ length: 16 }, (_, i) => i * 17));
  });

  it("reads type indices of 64 and more in heap types and block types (multi-byte s33)", () => {
    // 70 types, all (func); type 64 is the first whose s33 needs two bytes.
    const types = [...u32(70), ...new Array(70).fill([0x60, 0x00, 0x00]).flat()];
    const code = [
      0x00, // no locals
      0xd0,
      0xc0,
      0x00,
      0x1a, // ref.null 64; drop
      0x02,
      0xc5,
      0x00,
      0x0b, // block (type 69) end
      0x0b,
    ];
    const sections: [number, number[]][] = [
      [SectionId.type, types],
      [SectionId.function, [0x01, 0x00]],
      [SectionId.code, [0x01, ...u32(code.length), ...code]],
    ];
    const bytes = assembleModule(
      sections.map(([id, payload]) => ({ id, payload: Uint8Array.from(payload) })),
    );
    assert.ok(runtimeAccepts(bytes));
    const [body] = readFunctionBodies(bytes, codeSection(bytes));
    const reader = new InstructionReader(bytes, body);
    const nul = reader.next()!;
    assert.deepEqual([nul.opcode, nul.heapType, nul.end - nul.start], [0xd0, 64, 3]);
    reader.next();
    const block = reader.next()!;
    assert.deepEqual([block.opcode, block.blockType, block.end - block.start], [0x02, 69, 3]);
  });

  it("reads a padded empty block type as V8 does", () => {
    const { bytes, body } = oneFunction([0x02, 0xc0, 0x7f, 0x0b, 0x0b]);
    assert.equal(runtimeAccepts(bytes), RUNTIME === "deno");
    const reader = new InstructionReader(bytes, body);
    assert.equal(reader.next()!.blockType, -64);
  });

  it("rejects unknown opcodes at their offset, naming gated proposals", () => {
    rejectsCode([0x01, 0x16, 0x0b], MalformedModuleError, 1, /unknown opcode 0x16$/);
    rejectsCode([0x27, 0x0b], MalformedModuleError, 0, /unknown opcode 0x27/);
    rejectsCode([0x01, 0xc5, 0x0b], MalformedModuleError, 1, /0xc5/);
    rejectsCode([0xff, 0x0b], MalformedModuleError, 0, /0xff/);
    rejectsCode([0x01, 0xfd, 0x9a, 0x01, 0x0b], MalformedModuleError, 1, /0xfd 0x9a/);
    rejectsCode([0xfc, 0x12, 0x0b], MalformedModuleError, 0, /0xfc 0x12/);
    rejectsCode([0xfd, 0x80, 0x20, 0x0b], MalformedModuleError, 0, /0xfd 0x1000/);
    rejectsCode([0xfe, 0xff, 0xff, 0xff, 0xff, 0x0f], MalformedModuleError, 0, /0xfe 0xffffffff/);
    rejectsCode([0xfb, 0x1f], UnsupportedFeatureError, 0, /shared-everything/);
    rejectsCode([0xfb, 0x20], UnsupportedFeatureError, 0, /custom descriptors/);
    rejectsCode([0xfb, 0x80, 0x01], UnsupportedFeatureError, 0, /stringref/);
    rejectsCode([0xfd, 0xa0, 0x02], UnsupportedFeatureError, 0, /half-precision/);
    rejectsCode([0xfc, 0x30], UnsupportedFeatureError, 0, /half-precision/);
    rejectsCode([0xe0, 0x00], UnsupportedFeatureError, 0, /stack switching/);
    rejectsCode([0xfe, 0x5c], UnsupportedFeatureError, 0, /shared-everything/);
  });

  it("rejects malformed immediates at the immediate's offset", () => {
    rejectsCode([0x20, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], MalformedModuleError, 1, /too long/);
    rejectsCode([0x20, 0xff, 0xff, 0xff, 0xff, 0x1f], MalformedModuleError, 1, /too large/);
    rejectsCode([0x41, 0xff, 0xff, 0xff, 0xff, 0x4f], MalformedModuleError, 1, /too large/);
    rejectsCode([0x42, ...new Array(9).fill(0xff), 0x01], MalformedModuleError, 1, /too large/);
    rejectsCode([0x02, 0x7a, 0x0b, 0x0b], MalformedModuleError, 1, /block type -6/);
    rejectsCode([0x02, 0xbf, 0x7f, 0x0b, 0x0b], MalformedModuleError, 1, /block type -65/);
    rejectsCode([0xd0, 0x60], MalformedModuleError, 1, /heap type -32/);
    rejectsCode([0xd0, 0x65], UnsupportedFeatureError, 1, /shared-everything/);
    rejectsCode([0x28, 0x80, 0x01, 0x00], MalformedModuleError, 1, /memarg flags 128/);
    rejectsCode(
      [0x28, 0x02, ...new Array(9).fill(0x80), 0x02],
      MalformedModuleError,
      2,
      /too large/,
    );
    rejectsCode(
      [0x28, 0x02, ...new Array(10).fill(0x80), 0x00],
      MalformedModuleError,
      2,
      /too long/,
    );
    rejectsCode([0xfe, 0x03, 0x01], MalformedModuleError, 2, /atomic.fence operand/);
    rejectsCode([0x1c, 0x02, 0x7f, 0x7f], MalformedModuleError, 1, /exactly one type, not 2/);
    rejectsCode([0x1c, 0x00], MalformedModuleError, 1, /exactly one type, not 0/);
    rejectsCode([0x1f, 0x40, 0x01, 0x04, 0x00], MalformedModuleError, 3, /catch kind 4/);
    rejectsCode([0xfb, 0x18, 0x04, 0x00, 0x6e, 0x6e], MalformedModuleError, 2, /flags 4/);
    rejectsCode(
      [0x0e, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00],
      MalformedModuleError,
      1,
      /br_table label count 4294967295 exceeds the 1 bytes/,
    );
    rejectsCode(
      [0x1f, 0x40, 0xff, 0xff, 0x03, 0x00],
      MalformedModuleError,
      2,
      /catch clause count 65535/,
    );
    rejectsCode([0x1c, 0xff, 0x01, 0x7f], MalformedModuleError, 1, /select type count 255/);
  });

  it("checks the structure: else, catch, catch_all, delegate, and the final end", () => {
    rejectsCode([0x05, 0x0b], MalformedModuleError, 0, /else does not match an if/);
    rejectsCode([0x02, 0x40, 0x05, 0x0b, 0x0b], MalformedModuleError, 2, /else does not match/);
    rejectsCode([0x41, 0, 0x04, 0x40, 0x05, 0x05, 0x0b, 0x0b], MalformedModuleError, 5, /else/);
    rejectsCode([0x07, 0x00, 0x0b], MalformedModuleError, 0, /catch does not match a try/);
    rejectsCode([0x06, 0x40, 0x19, 0x07, 0x00], MalformedModuleError, 3, /catch does not match/);
    rejectsCode([0x02, 0x40, 0x19, 0x0b], MalformedModuleError, 2, /catch_all does not match/);
    rejectsCode([0x06, 0x40, 0x19, 0x19], MalformedModuleError, 3, /catch_all does not match/);
    rejectsCode([0x02, 0x40, 0x18, 0x00], MalformedModuleError, 2, /delegate does not match/);
    rejectsCode([0x06, 0x40, 0x07, 0x00, 0x18, 0x00], MalformedModuleError, 4, /delegate/);
    rejectsCode([0x18, 0x00, 0x0b], MalformedModuleError, 0, /delegate/);
    rejectsCode([0x0b, 0x01], MalformedModuleError, 1, /operators remaining after end/);
    rejectsCode([0x0b, 0x0b], MalformedModuleError, 1, /operators remaining/);
    rejectsCode([0x01], MalformedModuleError, 1, /must end with "end"/);
    rejectsCode([0x02, 0x40, 0x0b], MalformedModuleError, 3, /must end with "end"/);
    rejectsCode([], MalformedModuleError, 0, /must end with "end"/);
  });

  it("rejects every cut of a valid body, in every fixture, with a malformed-module error", () => {
    let cuts = 0;
    for (
      const file of ["mvp.wat", "simd.wat", "bulk_ref.wat", "exceptions.wat", "typed_refs.wat"]
    ) {
      const bytes = assembleWat(file);
      for (const body of readFunctionBodies(bytes, codeSection(bytes))) {
        for (let cut = body.localsEnd; cut < body.end; cut++) {
          assert.throws(
            () => decodeAll(bytes, { localsEnd: body.localsEnd, end: cut }),
            (e: unknown) =>
              e instanceof MalformedModuleError && e.offset >= body.localsEnd && e.offset <= cut,
          );
          cuts++;
        }
      }
    }
    assert.ok(cuts > 3000, `${cuts} cuts`);
  });

  it("decodes adversarial bodies in one pass: deep nesting, huge br_tables, long runs", () => {
    const depth = 100_000;
    const nested = [
      ...new Array(depth).fill([0x02, 0x40]).flat(),
      ...new Array(depth + 1).fill(0x0b),
    ];
    const { bytes: n, body: nb } = oneFunction(nested);
    assert.deepEqual(decodeAll(n, nb), { count: 2 * depth + 1, maxDepth: depth - 1 });
    const frames = [0x02, 0x40, 0x03, 0x40, 0x41, 0x00, 0x04, 0x40];
    const deep = [...new Array(depth).fill(frames).flat(), ...new Array(3 * depth + 1).fill(0x0b)];
    const { bytes: d, body: db } = oneFunction(deep);
    assert.equal(decodeAll(d, db).maxDepth, 3 * depth - 1);

    const labels = 200_000;
    const table = [0x41, 0x00, 0x0e, ...u32(labels), ...new Array(labels).fill(0), 0x00, 0x0b];
    const { bytes: t, body: tb } = oneFunction(table);
    const reader = new InstructionReader(t, tb);
    reader.next();
    assert.equal(reader.next()!.labels.length, labels);

    const nops = 1_000_000;
    const { bytes: r, body: rb } = oneFunction([...new Array(nops).fill(0x01), 0x0b]);
    assert.equal(decodeAll(r, rb).count, nops + 1);
  });
});

/** The error text of the runtime's compiler for a module, or null when it compiles. */
function compileError(bytes: Uint8Array<ArrayBuffer>): string | null {
  try {
    new WebAssembly.Module(bytes);
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** How each runtime says an opcode is unknown (the opcode is otherwise known, just misused). */
const UNKNOWN_OPCODE_MESSAGES = {
  deno: /Invalid opcode|invalid (numeric|simd|atomic|gc) opcode/,
  bun: /invalid opcode \d+|invalid extended (GC|simd|atomic) op|invalid 0xf[b-e] extended op/,
};

describe("instruction set coverage against the runtime", () => {
  it("knows every opcode the runtime knows, and no other, but the expected few", () => {
    const decoderOnly: string[] = [];
    const runtimeOnly: string[] = [];
    const probe = (opcode: number, encoding: readonly number[]): void => {
      // The opcode, then zeros: a misused known opcode fails validation, an unknown one decoding.
      const { bytes } = oneFunction([...encoding, ...new Array(24).fill(0), 0x0b]);
      const message = compileError(bytes);
      const runtimeKnows = message === null || !UNKNOWN_OPCODE_MESSAGES[RUNTIME].test(message);
      const decoderKnows = opcodeName(opcode) !== undefined;
      if (decoderKnows && !runtimeKnows) decoderOnly.push(opcode.toString(16));
      if (runtimeKnows && !decoderKnows) runtimeOnly.push(opcode.toString(16));
    };
    for (let byte = 0; byte < 0x100; byte++) {
      if (byte < 0xfb || byte > 0xfe) probe(byte, [byte]);
    }
    for (const prefix of [0xfb, 0xfc, 0xfd, 0xfe]) {
      for (let sub = 0; sub < 0x180; sub++) probe(prefix * 0x1000 + sub, [prefix, ...u32(sub)]);
    }
    // Deno (V8) does not enable wide arithmetic, and decodes struct.new_desc and
    // struct.new_default_desc (custom descriptors) before refusing them for lack of a descriptor
    // type, which its type section accepts only behind a flag.
    const expected = RUNTIME === "deno"
      ? { decoderOnly: ["fc013", "fc014", "fc015", "fc016"], runtimeOnly: ["fb020", "fb021"] }
      : { decoderOnly: [], runtimeOnly: [] };
    assert.deepEqual({ decoderOnly, runtimeOnly }, expected);
  });
});

describe("function body decoder fuzzing", () => {
  /** Bodies to mutate: every WAT fixture's and the hand-built module's, and some of sql.js's. */
  function corpus(): Uint8Array[] {
    const modules = [...WAT_FIXTURES.map((f) => assembleWat(f.file)), handBuiltModule()];
    const bodies: Uint8Array[] = [];
    for (const bytes of modules) {
      for (const b of readFunctionBodies(bytes, codeSection(bytes))) {
        bodies.push(bytes.slice(b.start, b.end));
      }
    }
    const sql = readRealModule(realModules().find((m) => m.name === "sql.js")!);
    for (const b of readFunctionBodies(sql, parseModule(sql).code!).slice(0, 300)) {
      bodies.push(sql.slice(b.start, b.end));
    }
    return bodies;
  }

  function mutate(body: Uint8Array, random: () => number): Uint8Array {
    const pick = (n: number): number => Math.floor(random() * n);
    const bytes = [...body];
    const edits = 1 + pick(4);
    for (let e = 0; e < edits && bytes.length > 0; e++) {
      const at = pick(bytes.length);
      switch (pick(6)) {
        case 0:
          bytes[at] ^= 1 << pick(8);
          break;
        case 1:
          bytes[at] = pick(256);
          break;
        case 2:
          bytes.splice(at, 0, pick(256));
          break;
        case 3:
          bytes.splice(at, 1 + pick(4));
          break;
        case 4:
          bytes.length = at;
          break;
        default: {
          // An interesting byte: a prefix, a block opener, a LEB continuation, an end.
          const interesting = [
            0xfb,
            0xfc,
            0xfd,
            0xfe,
            0x02,
            0x03,
            0x04,
            0x06,
            0x1f,
            0x0e,
            0x80,
            0xff,
            0x0b,
          ];
          bytes[at] = interesting[pick(interesting.length)];
        }
      }
    }
    return Uint8Array.from(bytes);
  }

  it("only ever returns or throws a WasmpoolError, in steps bounded by the body's size", () => {
    const bodies = corpus();
    let decoded = 0;
    let rejected = 0;
    for (const seed of [1, 2, 3]) {
      const random = prng(seed);
      for (let i = 0; i < 4000; i++) {
        const original = bodies[Math.floor(random() * bodies.length)];
        const body = mutate(original, random);
        // A code section of that one body: exercises the local declarations too.
        const section = Uint8Array.from([0x01, ...u32(body.length), ...body]);
        try {
          for (const b of readFunctionBodies(section, { start: 0, end: section.length })) {
            const reader = new InstructionReader(section, b);
            let steps = 0;
            let at = b.localsEnd;
            for (let ins = reader.next(); ins !== null; ins = reader.next()) {
              assert.ok(ins.start === at && ins.end > ins.start && ins.end <= b.end);
              at = ins.end;
              assert.ok(++steps <= b.end - b.localsEnd, "more instructions than bytes");
            }
          }
          decoded++;
        } catch (e) {
          if (!(e instanceof MalformedModuleError || e instanceof UnsupportedFeatureError)) {
            assert.fail(`seed ${seed} case ${i}: ${String(e)} for ${[...body].join(",")}`);
          }
          assert.ok(e.offset >= 0 && e.offset <= section.length, `offset ${e.offset}`);
          rejected++;
        }
      }
    }
    assert.ok(decoded > 500 && rejected > 500, `${decoded} decoded, ${rejected} rejected`);
  });
});
