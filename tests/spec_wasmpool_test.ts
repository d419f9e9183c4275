/**
 * The WebAssembly spec test suite through wasmpool's running instances, pooled and on demand,
 * compared command by command with the runtime's own `WebAssembly` (the harness in
 * `tests/spec/`): same values, same traps with the same messages, same link and compile
 * failures, same exported state at the end of each file.
 *
 * Modules wasmpool refuses on purpose (features it cannot pool: GC types, typed function
 * references, memory64, shared memories) are counted as refusals, by name.
 *
 * @module
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Config,
  Engine,
  GuardedMemory,
  InstanceAllocationStrategy,
  LimitError,
  LinkError,
  MalformedModuleError,
  Module,
  OutOfBoundsError,
  UnsupportedFeatureError,
} from "../mod.ts";
import { moduleState } from "../src/module.ts";
import { type Backend, errorClassOf } from "./spec/backend.ts";
import { type FileReport, runSpecFile } from "./spec/runner.ts";
import { currentRuntime } from "./spec/skips.ts";
import { loadSpecFile, SPEC_FILES } from "./spec/suite.ts";

const runtime = currentRuntime();

/** A deadline no spec command comes near: the wrapper sets it on every call. */
const DEADLINE_MS = 60_000;

/**
 * Limits wide enough for every module of the suite: it is the semantics under test here. With
 * `grownKept`, recycled instances keep grown memories (`recycleGrownMemoryPages`), so that the
 * modules that grow memory 0 run with its logical size (src/run/logical_memory.ts).
 */
function pooling(grownKept = false): InstanceAllocationStrategy {
  return InstanceAllocationStrategy.pooling({
    recycleGrownMemoryPages: grownKept ? 65_536 : 0,
    instanceLimits: { count: 200, memoryReservationSize: 2 ** 32 },
    moduleLimits: {
      importedFunctions: 10_000,
      importedTables: 10,
      importedMemories: 10,
      importedGlobals: 100,
      types: 10_000,
      functions: 10_000,
      tables: 100,
      memories: 10,
      globals: 1_000,
      tableElements: 10_000_000,
      memoryPages: 65_536,
    },
  });
}

// Tenants before the one under test, on the instance it will get: each scribbles over the
// exported memories, then disposes (the instance is reset for the next). Only for modules
// without a start function, whose instantiation runs no code that could reach outside.
const EARLIER_TENANTS = 2;

function earlierTenants(engine: Engine, module: Module, imports: Record<string, unknown>): void {
  if (module.notRecyclable !== null || moduleState(module).run.start) return;
  for (let t = 0; t < EARLIER_TENANTS; t++) {
    const tenant = engine.instantiate(module, imports as never);
    for (const value of Object.values(tenant.exports)) {
      if (!(value instanceof GuardedMemory)) continue;
      const bytes = new Uint8Array(value.buffer);
      for (let i = 0; i < bytes.length; i += 4093) bytes[i] = 0xa5 ^ t;
    }
    tenant.dispose();
  }
}

/** What else the engine turns on: interruption (deadlines), fuel. */
interface Checks {
  readonly interruption?: boolean;
  readonly fuel?: boolean;
}

function backend(
  name: string,
  strategy: () => InstanceAllocationStrategy,
  recycledAfterOthers = false,
  checks: Checks = {},
): Backend<Module> {
  const config = new Config().withAllocationStrategy(strategy()).withFuel(checks.fuel === true);
  if (checks.interruption) config.withInterruption();
  const engine = new Engine(config);
  const options = checks.interruption ? { deadlineMs: DEADLINE_MS } : undefined;
  return {
    name,
    compile: (bytes) => new Module(engine, bytes),
    instantiate: (module, imports) => {
      try {
        if (recycledAfterOthers) earlierTenants(engine, module, imports);
        return engine.instantiate(module, imports, options);
      } catch (error) {
        // wasmpool names the segment that does not fit; its cause is the runtime's own error,
        // which must be the reference's (class and message).
        if (!(error instanceof OutOfBoundsError)) throw error;
        assert.ok(error.cause instanceof WebAssembly.RuntimeError, `cause of ${error}`);
        outOfBounds.set(name, (outOfBounds.get(name) ?? 0) + 1);
        throw error.cause;
      }
    },
    errorClass: (error) =>
      error instanceof MalformedModuleError
        ? "CompileError"
        : error instanceof LinkError
        ? "LinkError"
        : errorClassOf(error),
    close: () => {
      const stats = engine.stats();
      warmHits.set(name, (warmHits.get(name) ?? 0) + stats.warmHits);
      engine.close();
    },
  };
}

/** Instantiations each backend served with a recycled instance, over every file. */
const warmHits = new Map<string, number>();
/** Instantiations each backend refused with OutOfBoundsError, over every file. */
const outOfBounds = new Map<string, number>();

const candidates: [string, () => Backend<Module>][] = [
  ["wasmpool pooling", () => backend("wasmpool pooling", pooling)],
  [
    "wasmpool pooling, recycled instances after earlier tenants",
    () => backend("wasmpool pooling, recycled", pooling, true),
  ],
  // Memory 0's memory.size and memory.grow replaced by its logical size, with the checks too.
  [
    "wasmpool pooling, logical memory sizes, fuel, recycled instances after earlier tenants",
    () =>
      backend(
        "wasmpool pooling, logical memory sizes, fuel, recycled",
        () => pooling(true),
        true,
        { fuel: true, interruption: true },
      ),
  ],
  ["wasmpool on-demand", () => backend("wasmpool on-demand", InstanceAllocationStrategy.onDemand)],
  // Interruption and fuel change every module's code (checks at loop headers and entries,
  // charges in every block) and its memories (the epoch memory after them): the same commands
  // must agree. Calls run with a generous deadline, so that the wrapper's path is the one taken.
  [
    "wasmpool pooling, interruption",
    () => backend("wasmpool pooling, interruption", pooling, false, { interruption: true }),
  ],
  [
    "wasmpool pooling, fuel, recycled instances after earlier tenants",
    () => backend("wasmpool pooling, fuel, recycled", pooling, true, { fuel: true }),
  ],
  ["wasmpool on-demand, interruption and fuel", () =>
    backend(
      "wasmpool on-demand, interruption and fuel",
      InstanceAllocationStrategy.onDemand,
      false,
      { interruption: true, fuel: true },
    )],
];

function failuresOf(report: FileReport): string {
  return report.failures.map((f) =>
    `${report.file}:${f.line} ${f.command} [${f.check}] ${f.reason}`
  ).join("\n");
}

for (const [title, make] of candidates) {
  describe(`spec suite through ${title}, against the runtime's own WebAssembly`, () => {
    const reports: FileReport[] = [];
    for (const name of SPEC_FILES) {
      it(`${name}.wast: every command agrees`, async () => {
        const candidate = make();
        try {
          const report = await runSpecFile(loadSpecFile(name), {
            candidate,
            refusals: [{
              name: "UnsupportedFeatureError",
              matches: (error) => error instanceof UnsupportedFeatureError,
            }, {
              // A table of 2^32 - 1 elements: past any pool's limit (and V8's own).
              name: "LimitError",
              matches: (error) => error instanceof LimitError,
            }],
          });
          reports.push(report);
          assert.equal(report.failures.length, 0, failuresOf(report));
        } finally {
          await candidate.close?.();
        }
      });
    }

    it("summary", () => {
      const compared = reports.reduce((n, r) => n + r.compared, 0);
      const refused = reports.reduce(
        (n, r) => n + Object.values(r.refused).reduce((a, b) => a + b, 0),
        0,
      );
      // This candidate's backend: the longest backend name its title starts with (each
      // recycled backend's name extends the plain "wasmpool pooling").
      let recycled = 0;
      let matched = -1;
      for (const [name, hits] of warmHits) {
        if (title.startsWith(name) && name.length > matched) {
          [recycled, matched] = [hits, name.length];
        }
      }
      const name = [...outOfBounds.keys()].filter((n) => title.startsWith(n))
        .sort((a, b) => b.length - a.length)[0];
      const segments = name === undefined ? 0 : outOfBounds.get(name)!;
      console.log(
        `spec suite in ${runtime} through ${title}: ${compared} commands compared, all equal; ` +
          `${refused} refused on purpose; ${recycled} instances were recycled ones; ` +
          `${segments} segments out of bounds were OutOfBoundsError`,
      );
      if (title.includes("recycled")) assert.ok(recycled > 100, `${recycled} recycled`);
      // data.wast, elem.wast, bulk.wast and others have modules whose segments do not fit.
      assert.ok(segments > 0, "no OutOfBoundsError");
    });
  });
}
