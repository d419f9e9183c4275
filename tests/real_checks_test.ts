// Real modules through their own glue, with interruption and fuel on: tiktoken (Rust,
// wasm-bindgen: tiktoken_bg.js) and sql.js (C, Emscripten: sql-wasm.js) give exactly what the
// runtime's own instance gives, with a deadline on every call; tiktoken's instances account the
// same fuel on every run. A deadline still stops them: a query that would run for ever throws
// DeadlineExceededError.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Config,
  DeadlineExceededError,
  Engine,
  type Instance,
  InstanceAllocationStrategy,
  Module,
} from "../mod.ts";
import { GlueCopies } from "./fixtures/glue_copies.ts";
import { readRealModule, realModules } from "./fixtures/npm_modules.ts";
import {
  smallRanks,
  TIKTOKEN,
  TIKTOKEN_GLUE_PATH,
  TIKTOKEN_PATTERN,
  type TiktokenGlue,
} from "./fixtures/tiktoken_glue.ts";

const DEADLINE_MS = 60_000;

function checkedEngine(): Engine {
  return new Engine(
    new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling({
      instanceLimits: { count: 4, memoryReservationSize: 2 ** 32 },
      moduleLimits: { memoryPages: 65536, functions: 10_000, globals: 100, tableElements: 100_000 },
    })).withInterruption().withFuel(),
  );
}

// Each glue keeps module-level state (its instance and views of its memory): one copy each.
const glues = new GlueCopies("real-checks");

const TEXTS = [
  "hello world",
  "the thing in the hell of the world",
  "pooled instances, <|endoftext|> and unicode: héllo wörld ✓",
  "deadlines and fuel ".repeat(2000),
];

async function tiktokenRun(
  make: (imports: Record<string, Record<string, unknown>>) => unknown,
): Promise<number[][]> {
  const glue = await glues.import<TiktokenGlue>(TIKTOKEN_GLUE_PATH);
  glue.__wbg_set_wasm(make({ "./tiktoken_bg.js": glue as unknown as Record<string, unknown> }));
  const encoder = new glue.Tiktoken(smallRanks(), { "<|endoftext|>": 300 }, TIKTOKEN_PATTERN);
  try {
    return TEXTS.map((t) => Array.from(encoder.encode(t, "all")));
  } finally {
    encoder.free();
  }
}

interface SqlDatabase {
  exec(sql: string): { columns: string[]; values: unknown[][] }[];
  close(): void;
}

async function sqlDatabase(make: (imports: unknown) => unknown): Promise<SqlDatabase> {
  const sql = realModules().find((m) => m.name === "sql.js")!;
  const init = glues.require<
    (options: {
      instantiateWasm(imports: unknown, done: (instance: unknown) => void): unknown;
    }) => Promise<{ Database: new () => SqlDatabase }>
  >(sql.path.replace(/\.wasm$/, ".js"));
  const SQL = await init({
    instantiateWasm(imports, done) {
      done(make(imports));
      return {};
    },
  });
  return new SQL.Database();
}

const QUERIES = [
  "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c REAL)",
  "INSERT INTO t(b, c) WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n " +
  "WHERE x < 3000) SELECT hex(x * 7919), x / 7.0 FROM n",
  "SELECT count(*), sum(c), max(b), min(length(b)) FROM t",
  "SELECT b, c FROM t WHERE a % 500 = 0 ORDER BY b DESC",
  "SELECT substr(group_concat(b, ','), 1, 64) FROM t WHERE a < 20",
];

function runQueries(db: SqlDatabase): unknown[] {
  return QUERIES.map((q) => db.exec(q));
}

describe("real modules with interruption and fuel on", () => {
  it("tiktoken encodes exactly as on the runtime's own instance", async () => {
    const bytes = readRealModule(TIKTOKEN);
    const expected = await tiktokenRun((imports) =>
      new WebAssembly.Instance(new WebAssembly.Module(bytes), imports as WebAssembly.Imports)
        .exports
    );
    using engine = checkedEngine();
    const module = new Module(engine, bytes);
    const fuel: number[] = [];
    for (let run = 0; run < 2; run++) {
      let instance: Instance | null = null;
      const got = await tiktokenRun((imports) => {
        instance = engine.instantiate(module, imports, { deadlineMs: DEADLINE_MS });
        return instance.exports;
      });
      assert.deepEqual(got, expected);
      fuel.push(instance!.fuelConsumed);
      instance!.dispose();
    }
    assert.equal(fuel[0], fuel[1], "the same work costs the same fuel");
    assert.ok(fuel[0] > 100_000, `${fuel[0]} units of fuel for four encodings`);
  });

  it("sql.js answers exactly as on the runtime's own instance", async () => {
    const bytes = readRealModule(realModules().find((m) => m.name === "sql.js")!);
    const plain = await sqlDatabase((imports) =>
      new WebAssembly.Instance(new WebAssembly.Module(bytes), imports as WebAssembly.Imports)
    );
    const expected = runQueries(plain);
    plain.close();
    using engine = checkedEngine();
    const module = new Module(engine, bytes);
    const fuel: number[] = [];
    for (let run = 0; run < 2; run++) {
      let instance: Instance | null = null;
      const db = await sqlDatabase((imports) => {
        instance = engine.instantiate(module, imports as Record<string, Record<string, unknown>>, {
          deadlineMs: DEADLINE_MS,
        });
        return instance;
      });
      assert.deepEqual(runQueries(db), expected);
      db.close();
      fuel.push(instance!.fuelConsumed);
      instance!.dispose();
    }
    // SQLite draws random numbers and reads the clock through its glue: its runs differ a
    // little, so its fuel does too. Only that it counted is checked here.
    assert.ok(fuel[0] > 1_000_000 && fuel[1] > 1_000_000, `fuel ${fuel}`);
  });

  it("a deadline stops a query that would run for ever", async () => {
    const bytes = readRealModule(realModules().find((m) => m.name === "sql.js")!);
    using engine = checkedEngine();
    const module = new Module(engine, bytes);
    let instance: Instance | null = null;
    const db = await sqlDatabase((imports) => {
      instance = engine.instantiate(module, imports as Record<string, Record<string, unknown>>);
      return instance;
    });
    instance!.setDeadline(100);
    const forever = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) " +
      "SELECT count(*) FROM n";
    assert.throws(() => db.exec(forever), DeadlineExceededError);
    instance!.dispose();
    glues.remove();
  });
});
