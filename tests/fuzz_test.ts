/**
 * The short fuzzing run (the long one is `script/fuzz`): a few thousand seeded cases of random,
 * truncated, bit-flipped and builder-made modules with code (see `tests/fixtures/fuzz.ts`),
 * each of which must translate or throw a `WasmpoolError`, on a pooling engine, a pooling
 * engine in uffd mode and an on-demand engine; what translates is instantiated by the allocator
 * and to run (`engine.instantiate`), its exports called and compared with the runtime's own
 * instance (`fuzz_run.ts`), with no instance left alive after any case. The engines have
 * interruption on, and a module's code runs under a deadline (`fuzz_bound.ts`), whose behaviour
 * is tested here too: a loop that runs long on demand too is a timeout, never a hang; wasmpool's
 * instance stopped where the same module on demand ended quickly is a finding, unless it ends
 * when run again. Every input kept in `tests/fixtures/fuzz_regressions/` must do the same on
 * every engine. Runs unchanged under `deno test` and `bun test`.
 *
 * @module
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  caseRng,
  closeEngines,
  type Corpus,
  createEngines,
  type FuzzCase,
  type FuzzEngine,
  generateCase,
  loadCorpus,
  randomSpec,
  Rng,
  runCase,
} from "./fixtures/fuzz.ts";
import { runBounded } from "./fixtures/fuzz_bound.ts";
import { buildModule } from "./fixtures/wasm_builder.ts";
import type { Imports } from "../mod.ts";

/**
 * Seeds and cases per seed of the short run: 4,500 cases, each translated, instantiated by the
 * allocator and (what translates) run beside the runtime's own instance.
 */
const SEEDS = [1, 2, 3];
const CASES_PER_SEED = 1500;

/** The bound's self-tests stop a module's code after this long. */
const SELFTEST_LIMIT_MS = 2000;

/** The case the bound's self-tests replace with a module of their own. */
const SELFTEST_CASE = 5;

/**
 * The self-tests' generator: case {@linkcode SELFTEST_CASE} is a module whose `run0` loops for
 * ever (`loop`) or counts to 2*10^7 (`count`: some milliseconds); the others are the fuzzer's.
 */
function selftestCases(what: "loop" | "count") {
  return (corpus: Corpus, seed: number, index: number): FuzzCase => {
    const c = generateCase(corpus, seed, index);
    if (index !== SELFTEST_CASE) return c;
    const body = what === "loop" ? [0x03, 0x40, 0x0c, 0x00, 0x0b] : [
      // loop: i += 1; br_if (i < 2*10^7)
      ...[0x03, 0x40, 0x20, 0, 0x41, 1, 0x6a, 0x22, 0],
      ...[0x41, 0x80, 0xda, 0xc4, 0x09, 0x49, 0x0d, 0, 0x0b],
    ];
    const bytes = buildModule({
      types: [{ params: [], results: [] }],
      functions: [0],
      exports: [{ name: "run0", kind: "function", index: 0 }],
      bodies: [{ locals: what === "count" ? [[1, "i32"]] : [], code: body }],
    });
    return { ...c, bytes, rng: new Rng(index + 1) };
  };
}

const regressionsDir = fileURLToPath(new URL("./fixtures/fuzz_regressions/", import.meta.url));

let corpus: Corpus | null = null;
function theCorpus(): Corpus {
  return corpus ??= loadCorpus();
}

function withEngines(body: (engines: FuzzEngine[]) => void): void {
  const engines = createEngines();
  try {
    body(engines);
  } finally {
    closeEngines(engines);
  }
}

describe("fuzzer", () => {
  it("generates the same case for the same seed and index, and others otherwise", () => {
    const c = theCorpus();
    for (let index = 0; index < 200; index++) {
      assert.deepEqual(generateCase(c, 9, index).bytes, generateCase(c, 9, index).bytes);
    }
    const a = Array.from({ length: 50 }, (_, i) => generateCase(c, 9, i).bytes);
    const b = Array.from({ length: 50 }, (_, i) => generateCase(c, 10, i).bytes);
    assert.ok(a.some((bytes, i) => bytes.length !== b[i].length), "seeds 9 and 10 agree");
    const rng = new Rng(1);
    const first = [rng.next(), rng.next(), rng.next()];
    assert.deepEqual(first, [270369, 67634689, 2647435461]);
  });

  it("reports an error other than a WasmpoolError as a finding", () => {
    const bytes = buildModule({
      types: [{ params: [], results: [] }],
      imports: [{ module: "env", name: "f", desc: { kind: "function", type: 0 } }],
    });
    const throwing: Imports = {
      env: {
        get f(): () => void {
          throw new TypeError("not a WasmpoolError");
        },
      },
    };
    withEngines((engines) => {
      for (const { engine } of engines) {
        const result = runCase(engine, bytes, throwing);
        assert.equal(result.outcome, "finding");
        assert.match(result.message ?? "", /instantiation: TypeError: not a WasmpoolError/);
        assert.equal(engine.stats().liveInstances, 0);
        assert.equal(runCase(engine, bytes, { env: { f: () => 0 } }).outcome, "instantiated");
      }
    });
  });

  it("writes code the runtimes accept: bodies of most unmutated modules validate", () => {
    let withCode = 0;
    let valid = 0;
    for (let index = 0; index < 400; index++) {
      const spec = randomSpec(caseRng(11, index));
      if (spec.bodies === undefined) continue;
      withCode++;
      if (WebAssembly.validate(buildModule(spec))) valid++;
    }
    assert.ok(withCode > 100, `${withCode} modules with code`);
    // The few that do not validate have a memory maximum the runtime refuses.
    assert.ok(valid / withCode > 0.97, `${valid} of ${withCode} validate`);
  });

  for (const seed of SEEDS) {
    // A safety net against a hang, not a timing assertion: bun's default of 5 s is too short.
    it(`seed ${seed}: ${CASES_PER_SEED} cases translate or throw WasmpoolError, and run`, {
      timeout: 600_000,
    }, async () => {
      const summary = await runBounded({ seed, cases: CASES_PER_SEED, corpus: theCorpus() });
      const findings = summary.findings.map((f) =>
        `case ${f.index} (${f.kind}, ${f.engine}): ${f.message}`
      );
      assert.deepEqual(findings, []);
      assert.equal(summary.translated + summary.rejected, CASES_PER_SEED);
      // The generators must reach instantiation, not only the parser's first error, and then
      // run code, call it and compare it with the runtime's own instance.
      assert.ok(summary.instantiated > CASES_PER_SEED / 10, `${summary.instantiated} allocated`);
      assert.ok(summary.ran > CASES_PER_SEED / 10, `${summary.ran} ran`);
      assert.ok(summary.calls > CASES_PER_SEED / 10, `${summary.calls} calls`);
      assert.ok(summary.compared > CASES_PER_SEED / 20, `${summary.compared} compared`);
    });
  }

  describe("the time bound (deadlines)", () => {
    const bounded = (what: "loop" | "count", tenantDeadlineMs?: (attempt: number) => number) =>
      runBounded({
        seed: 1,
        cases: 8,
        corpus: theCorpus(),
        limitMs: SELFTEST_LIMIT_MS,
        generate: selftestCases(what),
        tenantDeadlineMs,
      });

    it("a module that loops for ever, on demand too: a timeout, stopped by its deadline", {
      timeout: 120_000,
    }, async () => {
      const summary = await bounded("loop");
      assert.deepEqual(summary.findings.map((f) => f.message), []);
      assert.deepEqual(summary.timeouts.map((t) => [t.index, t.phase]), [[
        SELFTEST_CASE,
        "reference",
      ]]);
      assert.equal(summary.cases, 8);
    });

    it("wasmpool's instance stopped twice where the same module on demand ended: a finding", {
      timeout: 120_000,
    }, async () => {
      const summary = await bounded("count", () => 1);
      assert.deepEqual(summary.timeouts, []);
      assert.equal(summary.findings.length, 1);
      assert.equal(summary.findings[0].index, SELFTEST_CASE);
      assert.match(
        summary.findings[0].message,
        /^wasmpool's instance ran past its deadline of 1 ms/,
      );
      assert.equal(summary.cases, 8);
    });

    it("wasmpool's instance stopped once, then ending when run again: a timeout", {
      timeout: 120_000,
    }, async () => {
      const summary = await bounded("count", (attempt) => attempt === 1 ? 1 : SELFTEST_LIMIT_MS);
      assert.deepEqual(summary.findings.map((f) => f.message), []);
      assert.deepEqual(
        summary.timeouts.map((t) => [t.index, t.phase, t.rerun]),
        [[SELFTEST_CASE, "running", "ended"]],
      );
      assert.equal(summary.cases, 8);
    });
  });

  // In this process: every input here ends (a module that ran forever would be a timeout, and
  // is not kept).
  it("every regression input translates or throws WasmpoolError on every engine", () => {
    const files = readdirSync(regressionsDir).filter((f) => f.endsWith(".wasm")).sort();
    withEngines((engines) => {
      for (const file of files) {
        const bytes = new Uint8Array(readFileSync(regressionsDir + file));
        for (const { name, engine } of engines) {
          // A few stub-import draws per engine: imports differ with the generator's state.
          for (let draw = 0; draw < 3; draw++) {
            const result = runCase(engine, bytes, undefined, { rng: new Rng(draw + 1) });
            assert.notEqual(result.outcome, "finding", `${file} on ${name}: ${result.message}`);
          }
        }
      }
    });
  });
});
