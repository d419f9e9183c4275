/**
 * Tests of the function body decoder (`src/module/code.ts`). Runs under `deno test` and
 * `bun test`.
 *
 * The oracle is wabt's `wasm-objdump -d` (see `tests/fixtures/wabt.ts`): every instruction of the
 * real npm modules and of the WAT fixtures in `tests/fixtures/code/` (one per opcode group) must
 * decode to the offset, length, nesting depth, mnemonic and immediates wabt lists, and each
 * fixture must be accepted by the runtime's own `WebAssembly.Module` where the runtime enables its
 * feature. GC instructions, which wabt's text parser does not know, are checked in
 * `code_hand_built_test.ts` against hand-computed encodings.
 *
 * @module
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  type CodeSectionExtent,
  type FunctionBody,
  InstructionReader,
  readFunctionBodies,
} from "../src/module/code.ts";
import { parseModule } from "../src/module/parse.ts";
import { OPCODE_NAMES, opcodeName } from "../src/module/opcodes.ts";
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
    // The GC instructions (0xFB) and ref.eq are covered by code_hand_built_test.ts.
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
