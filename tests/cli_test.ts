// The demo (cli.ts): its JSON report for the embedded module (instances that run, the baseline,
// the allocator alone), the call it chooses for a user's module (the first exported function
// that takes no arguments, --call, --no-call, none), stubs for function imports, and its exit
// statuses. main() runs in this process with console output captured; few cycles, since only
// behaviour is asserted here, never speed.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DemoReport, main, type StrategyResult } from "../cli.ts";
import { DEMO_CALL_EXPORT, DEMO_DATA_SUM } from "../src/demo_module.ts";
import { buildModule, type ModuleSpec } from "./fixtures/wasm_builder.ts";

interface Run {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs main(args) with console.log and console.error captured. */
function runMain(args: readonly string[]): Run {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...items: unknown[]) => void out.push(items.join(" "));
  console.error = (...items: unknown[]) => void err.push(items.join(" "));
  try {
    const status = main(args);
    return { status, stdout: out.join("\n"), stderr: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

function report(args: readonly string[]): DemoReport {
  const run = runMain([...args, "--json"]);
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout) as DemoReport;
}

function measured(r: DemoReport, cycle: string): StrategyResult[] {
  return r.results.filter((row): row is StrategyResult =>
    row.cycle === cycle && !("skipped" in row)
  );
}

const work = mkdtempSync(join(tmpdir(), "wasmpool-cli-"));
let files = 0;
function moduleFile(spec: ModuleSpec): string {
  const path = join(work, `module-${files++}.wasm`);
  writeFileSync(path, buildModule(spec));
  return path;
}

// i32.const 1; i32.const 2; i32.add
const ADD = { code: [0x41, 0x01, 0x41, 0x02, 0x6a] };

describe("the demo", () => {
  it("runs the embedded module's sum() in every running cycle, beside the baseline", () => {
    const r = report(["--cycles", "40"]);
    assert.deepEqual(r.call, { name: DEMO_CALL_EXPORT, result: String(DEMO_DATA_SUM), none: null });
    assert.deepEqual(r.memoryExports, ["memory"]);
    const run = measured(r, "run");
    const allocate = measured(r, "allocate");
    const skipped = r.results.filter((row) => "skipped" in row);
    // uffd rows are skipped only where userfaultfd is unavailable.
    assert.equal(run.length + allocate.length + skipped.length, 7);
    assert.ok(skipped.every((row) => row.strategy === "pooling (uffd)"));
    assert.deepEqual(
      run.map((row) => row.strategy).filter((s) => s !== "pooling (uffd)"),
      ["pooling (mprotect)", "on-demand", "WebAssembly.Instance"],
    );
    for (const row of run) {
      assert.equal(row.cycles, 40, row.strategy);
      assert.equal(row.calls, 40, row.strategy);
      assert.equal(row.pagesTouched, 40, row.strategy); // one page, read once a cycle
      assert.equal(row.instantiations, 40, row.strategy);
      assert.ok(row.usPerCycleMedian > 0, row.strategy);
    }
    // Pooling makes one memory and reuses it, and recycles the instance (the embedded module
    // is recyclable); on demand and the baseline make a memory a cycle.
    const pooled = run.find((row) => row.strategy === "pooling (mprotect)");
    assert.equal(pooled?.memoriesMade, 1);
    assert.equal(pooled?.notRecyclable, null);
    assert.ok((pooled?.recycled ?? 0) > 0, `${pooled?.recycled} recycled`);
    assert.equal(run.find((row) => row.strategy === "on-demand")?.memoriesMade, 40);
    assert.equal(run.find((row) => row.strategy === "WebAssembly.Instance")?.memoriesMade, 40);
    assert.deepEqual(
      allocate.map((row) => row.strategy).filter((s) => s !== "pooling (uffd)"),
      ["pooling (mprotect)", "on-demand"],
    );
    for (const row of allocate) {
      assert.equal(row.calls, 0);
      assert.equal(row.pagesTouched, 40);
      assert.equal(row.instantiations, 40);
    }
    const uffd = allocate.find((row) => row.strategy === "pooling (uffd)");
    if (uffd !== undefined) assert.ok(uffd.faultsServed !== null && uffd.faultsServed >= 1);
  });

  it("prints the head and both tables", () => {
    const run = runMain(["--cycles", "20"]);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /each running cycle calls sum\(\), which returns 130560/);
    assert.match(
      run.stdout,
      /instances that run: engine\.instantiate \+ sum\(\) \+ read each wasm page of exports\.memory\.buffer \+ dispose/,
    );
    assert.match(run.stdout, /^WebAssembly\.Instance \(baseline\) +[\d.]+ +1\.00×/m);
    assert.match(run.stdout, /^the allocator alone \(nothing runs\)/m);
    assert.match(run.stdout, /^on-demand +[\d.]+ +1\.00×/m);
  });

  it("calls the first exported function that takes no arguments; stubs function imports", () => {
    const path = moduleFile({
      types: [{ params: ["i32"], results: ["i32"] }, { params: [], results: ["i32"] }],
      imports: [{ module: "env", name: "log", desc: { kind: "function", type: 0 } }],
      functions: [0, 1, 1],
      memories: [{ min: 2, max: null, shared: false }],
      exports: [
        { name: "takes", kind: "function", index: 1 },
        { name: "three", kind: "function", index: 2 },
        { name: "other", kind: "function", index: 3 },
        { name: "mem", kind: "memory", index: 0 },
      ],
      bodies: [undefined, ADD, undefined],
    });
    const r = report(["--cycles", "20", path]);
    assert.deepEqual(r.call, { name: "three", result: "3", none: null });
    assert.deepEqual(r.memoryExports, ["mem"]);
    assert.equal(r.module.imports.function, 1);
    for (const row of measured(r, "run")) assert.equal(row.pagesTouched, 40, row.strategy);
    const named = report(["--cycles", "20", "--call", "other", path]);
    assert.deepEqual(named.call, { name: "other", result: "0", none: null });
    const none = report(["--cycles", "20", "--no-call", path]);
    assert.equal(none.call.name, null);
    assert.equal(none.call.none, "--no-call");
    for (const row of measured(none, "run")) assert.equal(row.calls, 0);
  });

  it("calls nothing when no export takes no arguments, or the call throws, and says why", () => {
    const takes = moduleFile({
      types: [{ params: ["i32"], results: [] }],
      functions: [0],
      exports: [{ name: "f", kind: "function", index: 0 }],
    });
    assert.equal(
      report(["--cycles", "20", takes]).call.none,
      "every exported function takes arguments",
    );
    const nothing = moduleFile({ memories: [{ min: 1, max: 1, shared: false }] });
    assert.equal(report(["--cycles", "20", nothing]).call.none, "the module exports no function");
    // The export calls its import, a stub that throws.
    const stubbed = moduleFile({
      types: [{ params: [], results: [] }],
      imports: [{ module: "env", name: "f", desc: { kind: "function", type: 0 } }],
      functions: [0],
      exports: [{ name: "g", kind: "function", index: 1 }],
      bodies: [{ code: [0x10, 0x00] }], // call 0
    });
    const r = report(["--cycles", "20", stubbed]);
    assert.equal(r.call.name, null);
    assert.match(r.call.none ?? "", /^g\(\) threw .*env\.f is a stub of the wasmpool demo/);
    assert.equal(measured(r, "run").length >= 3, true);
  });

  it("skips the running rows when the runtime's own instantiation throws", () => {
    const path = moduleFile({
      types: [{ params: [], results: [] }],
      functions: [0],
      start: 0,
      bodies: [{ code: [0x00] }], // unreachable
    });
    const r = report(["--cycles", "20", path]);
    const run = r.results.filter((row) => row.cycle === "run");
    assert.equal(run.length, 3);
    for (const row of run) {
      assert.match((row as { skipped: string }).skipped, /^new WebAssembly\.Instance threw/);
    }
    assert.ok(measured(r, "allocate").length >= 2);
  });

  it("exits 2 for usage errors and imports it cannot provide, 1 for bad modules", () => {
    assert.equal(runMain(["--cycles", "0"]).status, 2);
    assert.equal(runMain(["--seconds", "-1"]).status, 2);
    assert.equal(runMain(["--frobnicate"]).status, 2);
    const path = moduleFile({
      types: [{ params: ["i32"], results: [] }],
      functions: [0],
      exports: [{ name: "f", kind: "function", index: 0 }],
    });
    const takes = runMain(["--call", "f", path]);
    assert.equal(takes.status, 2);
    assert.match(takes.stderr, /--call f: the function takes 1 arguments/);
    assert.equal(runMain(["--call", "nope", path]).status, 2);
    const memory = moduleFile({
      imports: [{
        module: "env",
        name: "memory",
        desc: { kind: "memory", type: { min: 1, max: null, shared: false } },
      }],
    });
    const imported = runMain([memory]);
    assert.equal(imported.status, 2);
    assert.match(imported.stderr, /memory "env"\."memory"/);
    const malformed = join(work, "malformed.wasm");
    writeFileSync(malformed, Uint8Array.of(0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01));
    assert.equal(runMain([malformed]).status, 1);
    assert.equal(runMain([join(work, "missing.wasm")]).status, 1);
  });
});

after(() => rmSync(work, { recursive: true, force: true }));
