/**
 * The short fuzzing run (the long one is `script/fuzz`): a few thousand seeded cases of random,
 * truncated, bit-flipped and builder-made modules (see `tests/fixtures/fuzz.ts`), each of which
 * must translate or throw a `WasmpoolError`, on a pooling engine, a pooling engine in uffd mode
 * and an on-demand engine, with no instance left alive after any case. Every input kept in
 * `tests/fixtures/fuzz_regressions/` must do the same on every engine. Runs unchanged under
 * `deno test` and `bun test`.
 *
 * @module
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  closeEngines,
  type Corpus,
  createEngines,
  type FuzzEngine,
  generateCase,
  loadCorpus,
  Rng,
  runCase,
  runFuzz,
} from "./fixtures/fuzz.ts";
import { buildModule } from "./fixtures/wasm_builder.ts";
import type { Imports } from "../mod.ts";

/** Seeds and cases per seed of the short run: 9,000 cases, 3-4 s per runtime on two cores. */
const SEEDS = [1, 2, 3];
const CASES_PER_SEED = 3000;

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

  for (const seed of SEEDS) {
    // A safety net against a hang, not a timing assertion: bun's default of 5 s is too short
    // on a loaded machine.
    it(`seed ${seed}: ${CASES_PER_SEED} cases translate or throw WasmpoolError`, {
      timeout: 120_000,
    }, () => {
      withEngines((engines) => {
        const summary = runFuzz({ seed, cases: CASES_PER_SEED, engines, corpus: theCorpus() });
        const findings = summary.findings.map((f) =>
          `case ${f.index} (${f.kind}, ${f.engine}): ${f.message}`
        );
        assert.deepEqual(findings, []);
        assert.equal(summary.translated + summary.rejected, CASES_PER_SEED);
        // The generators must reach instantiation, not only the parser's first error.
        assert.ok(
          summary.instantiated > CASES_PER_SEED / 10,
          `${summary.instantiated} instantiated`,
        );
        for (const { engine } of engines) assert.equal(engine.stats().liveInstances, 0);
      });
    });
  }

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
