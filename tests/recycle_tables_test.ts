// Recycled instances of modules that hand function references out: an exported funcref table,
// an exported funcref global, an export that returns one, a host import that is passed one. Each
// reference a tenant gets is bound to it: it throws DisposedError once the tenant disposes and
// never runs on the next tenant's state; the next tenant sees the module's initial tables.
// The module is tests/fixtures/func_refs.wat; its `count` is what a stale reference would change.
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Config,
  DisposedError,
  Engine,
  type GuardedGlobal,
  type GuardedTable,
  type Instance,
  InstanceAllocationStrategy,
  Module,
} from "../mod.ts";
import { readRealModule, realModules } from "./fixtures/npm_modules.ts";
import { type SqlDatabase, sqlJs } from "./fixtures/sql_glue.ts";
import { findBytes } from "./fixtures/find_bytes.ts";
import { collectUntil } from "./fixtures/gc.ts";
import { assembleWat } from "./fixtures/wabt.ts";

type Fn = (...args: unknown[]) => unknown;

const BYTES = assembleWat("../func_refs.wat");

function pooledEngine(): Engine {
  return new Engine(new Config().withAllocationStrategy(
    InstanceAllocationStrategy.pooling({
      instanceLimits: { count: 4 },
      moduleLimits: { tables: 2, importedTables: 1 },
    }),
  ));
}

/** The host side of one tenant: what `seen` was handed, what `pick` returns. */
interface Host {
  seen: unknown[];
  pick: unknown;
}

function imports(host: Host): Record<string, Record<string, unknown>> {
  return {
    env: { seen: (f: unknown) => void host.seen.push(f) },
    host: { pick: () => host.pick },
  };
}

function fn(instance: Instance, name: string): Fn {
  return instance.exports[name] as Fn;
}

function table(instance: Instance): GuardedTable {
  return instance.exports.table as GuardedTable;
}

/** A tenant of `module`, asserting it got the recycled instance (a warm hit). */
function tenant(engine: Engine, module: Module, host: Host = { seen: [], pick: null }): Instance {
  const hits = engine.stats().warmHits;
  const instance = engine.instantiate(module, imports(host));
  assert.equal(engine.stats().warmHits - hits, 1, "the tenant got the recycled instance");
  return instance;
}

describe("recycled instances that hand function references out", () => {
  it("are recyclable: exported funcref tables and globals, funcrefs in signatures", () => {
    using engine = pooledEngine();
    assert.equal(new Module(engine, BYTES).notRecyclable, null);
  });

  it("bind a function taken from the table to its tenant: dead with it, never on the next", () => {
    using engine = pooledEngine();
    const module = new Module(engine, BYTES);
    engine.instantiate(module, imports({ seen: [], pick: null })).dispose();
    const a = tenant(engine, module);
    const inc = table(a).get(0) as Fn;
    assert.equal(inc(1), 2);
    assert.equal(fn(a, "count")(), 1);
    a.dispose();
    const b = tenant(engine, module);
    assert.throws(() => inc(1), DisposedError);
    assert.equal(fn(b, "count")(), 0, "the stale reference did not run on the next tenant");
    assert.equal((table(b).get(0) as Fn)(1), 2);
    assert.equal(fn(b, "count")(), 1);
    b.dispose();
  });

  it("bind references returned by an export, read from a global, handed to an import", () => {
    using engine = pooledEngine();
    const module = new Module(engine, BYTES);
    engine.instantiate(module, imports({ seen: [], pick: null })).dispose();
    const host: Host = { seen: [], pick: null };
    const a = tenant(engine, module, host);
    const returned = fn(a, "ref")(1) as Fn;
    const global = (a.exports.fref as GuardedGlobal).value as Fn;
    fn(a, "hand")(0);
    const handed = host.seen[0] as Fn;
    assert.equal(returned(3), 6);
    assert.equal(global(3), 4);
    assert.equal(handed(3), 4);
    assert.equal(fn(a, "count")(), 12);
    a.dispose();
    const b = tenant(engine, module);
    for (const stale of [returned, global, handed]) assert.throws(() => stale(3), DisposedError);
    assert.equal(fn(b, "count")(), 0, "no stale reference ran on the next tenant");
    b.dispose();
  });

  it("hand out one wrapper per function within a tenant, null as null", () => {
    using engine = pooledEngine();
    const module = new Module(engine, BYTES);
    const host: Host = { seen: [], pick: null };
    using a = engine.instantiate(module, imports(host));
    const t = table(a);
    assert.equal(t.get(0), t.get(0));
    assert.equal(fn(a, "ref")(0), t.get(0));
    assert.equal((a.exports.fref as GuardedGlobal).value, t.get(0));
    fn(a, "hand")(0);
    assert.equal(host.seen[0], t.get(0));
    assert.equal(t.get(2), null);
    assert.equal(fn(a, "ref")(3), null);
    fn(a, "hand")(3);
    assert.equal(host.seen[1], null);
    assert.notEqual(t.get(0), t.get(1));
  });

  it("take the tenant's own references back in every way, and refuse a dead tenant's", () => {
    using engine = pooledEngine();
    const module = new Module(engine, BYTES);
    const host: Host = { seen: [], pick: null };
    const a = engine.instantiate(module, imports(host));
    const dbl = table(a).get(1) as Fn;
    table(a).set(2, dbl);
    assert.equal(fn(a, "callAt")(2, 5), 10, "table.set");
    fn(a, "put")(3, table(a).get(0));
    assert.equal(fn(a, "callAt")(3, 5), 6, "an export's argument");
    host.pick = dbl;
    fn(a, "take")(3);
    assert.equal(fn(a, "callAt")(3, 5), 10, "an import's result");
    (a.exports.fref as GuardedGlobal).value = dbl;
    assert.equal((a.exports.fref as GuardedGlobal).value, dbl, "a global's value");
    a.dispose();

    const b = tenant(engine, module, host);
    const t = table(b);
    assert.throws(() => t.set(2, dbl), DisposedError);
    assert.throws(() => t.grow(1, dbl), DisposedError);
    assert.throws(() => fn(b, "put")(2, dbl), DisposedError);
    assert.throws(() => (b.exports.fref as GuardedGlobal).value = dbl, DisposedError);
    host.pick = dbl;
    assert.throws(() => fn(b, "take")(2), DisposedError);
    assert.equal(fn(b, "isNull")(2), 1, "nothing stale reached the table");
    assert.equal(t.length, 4, "nor grew it");
    b.dispose();
  });

  it("restore the initial table for the next tenant: entries set by JS and the guest cleared", () => {
    using engine = pooledEngine();
    const module = new Module(engine, BYTES);
    const stats = engine.stats();
    const a = engine.instantiate(module, imports({ seen: [], pick: null }));
    const t = table(a);
    t.set(0, null);
    t.set(1, t.get(1));
    t.set(2, t.get(1));
    fn(a, "guestSet")(3);
    (a.exports.fref as GuardedGlobal).value = null;
    const marker = { tenant: "a" };
    (a.exports.ext as GuardedTable).set(1, marker);
    (a.exports.eref as GuardedGlobal).value = marker;
    assert.equal(fn(a, "callAt")(3, 5), 4);
    a.dispose();
    const b = tenant(engine, module);
    const u = table(b);
    assert.deepEqual([0, 1, 2, 3].map((i) => fn(b, "isNull")(i)), [0, 0, 1, 1]);
    assert.equal(fn(b, "callAt")(0, 5), 6, "element segments are back");
    assert.equal(fn(b, "callAt")(1, 5), 10);
    assert.equal(u.get(2), null);
    assert.equal(((b.exports.fref as GuardedGlobal).value as Fn)(1), 2);
    assert.equal((b.exports.ext as GuardedTable).get(1), null, "externref entries cleared");
    assert.equal((b.exports.eref as GuardedGlobal).value, null, "externref globals cleared");
    assert.equal(fn(b, "count")(), 12);
    b.dispose();
    assert.equal(engine.stats().recycleFallbacks, stats.recycleFallbacks);
  });

  it("replace the instance of a tenant that grew its table, and count it", () => {
    using engine = pooledEngine();
    const module = new Module(engine, BYTES);
    const a = engine.instantiate(module, imports({ seen: [], pick: null }));
    table(a).grow(2, table(a).get(0));
    a.dispose();
    assert.equal(engine.stats().recycleFallbacks, 1);
    using b = engine.instantiate(module, imports({ seen: [], pick: null }));
    assert.equal(table(b).length, 4);
    assert.equal(engine.stats().warmHits, 0);
  });

  it("replace, not recycle, an instance whose table another instance imported", () => {
    using engine = pooledEngine();
    const module = new Module(engine, BYTES);
    const importer = new Module(engine, assembleWat("../table_importer.wat"));
    const a = engine.instantiate(module, imports({ seen: [], pick: null }));
    const other = engine.instantiate(importer, { env: { table: a.exports.table } });
    assert.equal(fn(other, "callAt")(1, 4), 8);
    a.dispose();
    assert.throws(() => fn(other, "callAt")(1, 4), DisposedError);
    assert.equal(engine.stats().recycleFallbacks, 1);
    using b = engine.instantiate(module, imports({ seen: [], pick: null }));
    assert.equal(engine.stats().warmHits, 0, "the next tenant got a new instance");
    assert.equal(fn(b, "count")(), 0);
    other.dispose();
  });

  it("end a tenant dropped without dispose() whose import was handed a reference", async () => {
    using engine = pooledEngine();
    const module = new Module(engine, BYTES);
    // The warm instance holds the tenant's imports until the tenant ends: these keep nothing
    // (an import that kept a reference, or the exports, would keep the tenant).
    let handed = 0;
    const forgetful = { env: { seen: () => void handed++ }, host: { pick: () => null } };
    (() => {
      const instance = engine.instantiate(module, forgetful);
      fn(instance, "hand")(0);
    })();
    assert.equal(handed, 1);
    assert.equal(engine.stats().runningInstances, 1);
    assert.ok(
      await collectUntil(() => engine.stats().runningInstances === 0),
      "the dropped tenant was not ended",
    );
    assert.equal(engine.stats().recycled, 1, "its instance was recycled");
  });

  it("give the same results as the runtime's own instances, tenant after tenant", () => {
    const random = seeded(0x7ab1e5);
    const script = Array.from(
      { length: 40 },
      () => Array.from({ length: 12 }, () => [Math.floor(random() * 7), Math.floor(random() * 4)]),
    );
    const plain = script.map((steps) => {
      const host: Host = { seen: [], pick: null };
      const raw = new WebAssembly.Instance(
        new WebAssembly.Module(BYTES),
        imports(host) as WebAssembly.Imports,
      );
      return drive(raw.exports as Record<string, unknown>, host, steps);
    });
    using engine = pooledEngine();
    const module = new Module(engine, BYTES);
    const pooled = script.map((steps) => {
      const host: Host = { seen: [], pick: null };
      using instance = engine.instantiate(module, imports(host));
      return drive(instance.exports as Record<string, unknown>, host, steps);
    });
    assert.deepEqual(pooled, plain);
    assert.ok(engine.stats().warmHits >= script.length - 1, "tenants got the recycled instance");
  });
});

const SQL_TENANTS = 10_000;
const SWC_WASM = "../.tools/fixtures/node_modules/@swc/wasm/wasm_bg.wasm";

function realEngine(): Engine {
  return new Engine(new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling({
    instanceLimits: { count: 4, memoryReservationSize: 2 ** 32 },
    moduleLimits: {
      memoryPages: 65536,
      functions: 100_000,
      types: 1000,
      globals: 100,
      tableElements: 100_000,
    },
  })));
}

const QUERIES = [
  "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c REAL)",
  "INSERT INTO t(b, c) WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n " +
  "WHERE x < 2000) SELECT hex(x * 7919), x / 7.0 FROM n",
  "SELECT count(*), sum(c), max(b), min(length(b)) FROM t",
  "SELECT b, c FROM t WHERE a % 400 = 0 ORDER BY b DESC",
];

/** Tenant `i`'s marker: 4 bytes, each with its high bit set, unique for 2^21 tenants. */
function markerWord(i: number): number[] {
  return [0xf1, 0x80 | (i & 0x7f), 0x80 | ((i >> 7) & 0x7f), 0x80 | ((i >> 14) & 0x7f)];
}

/** The marker as a SQL blob: the word 8 times. */
function markerBlob(i: number): string {
  const hex = markerWord(i).map((b) => b.toString(16)).join("");
  return `X'${hex.repeat(8)}'`;
}

/** Whether `memory` holds tenant `i`'s marker word, at any alignment. */
function holdsMarker(memory: ArrayBuffer, i: number): boolean {
  return findBytes(new Uint8Array(memory), new Uint8Array(markerWord(i))) !== -1;
}

describe("recycled instances of real modules that export their function table", () => {
  it("are recyclable: sql.js (Emscripten) and @swc/wasm (wasm-bindgen)", () => {
    using engine = realEngine();
    const sql = readRealModule(realModules().find((m) => m.name === "sql.js")!);
    assert.equal(new Module(engine, sql).notRecyclable, null, "sql.js");
    const swc = readFileSync(new URL(SWC_WASM, import.meta.url));
    assert.equal(new Module(engine, swc).notRecyclable, null, "@swc/wasm");
  });

  it("run sql.js through its own glue, answering as the runtime's own instance", async () => {
    const bytes = readRealModule(realModules().find((m) => m.name === "sql.js")!);
    const compiled = new WebAssembly.Module(bytes);
    const plainSql = await sqlJs((imports) =>
      new WebAssembly.Instance(compiled, imports as WebAssembly.Imports)
    );
    const plain = new plainSql.Database();
    const expected = QUERIES.map((q) => plain.exec(q));
    plain.close();
    using engine = realEngine();
    const module = new Module(engine, bytes);
    for (let run = 0; run < 3; run++) {
      let instance: Instance | null = null;
      const sql = await sqlJs((imports) =>
        instance = engine.instantiate(module, imports as Record<string, Record<string, unknown>>)
      );
      const db = new sql.Database();
      assert.deepEqual(QUERIES.map((q) => db.exec(q)), expected);
      db.close();
      instance!.dispose();
    }
    const stats = engine.stats();
    assert.equal(stats.warmHits, 2, "the second and third runs got the recycled instance");
    assert.equal(stats.recycleFallbacks, 0);
  });

  it(`show none of a sql.js tenant's bytes or table entries to the next, ${SQL_TENANTS} times`, {
    timeout: 600_000,
  }, async () => {
    const bytes = readRealModule(realModules().find((m) => m.name === "sql.js")!);
    using engine = realEngine();
    const module = new Module(engine, bytes);
    const plain = new WebAssembly.Instance(
      new WebAssembly.Module(bytes),
      stubImports(bytes),
    ).exports.O as WebAssembly.Table;
    const initialNulls = Array.from({ length: plain.length }, (_, k) => plain.get(k) === null);
    const nullAt = initialNulls.indexOf(true);
    assert.ok(nullAt >= 0, "sql.js's table has a null entry");
    for (let i = 0; i < SQL_TENANTS; i++) {
      let instance: Instance | null = null;
      const sql = await sqlJs((imports) => {
        instance = engine.instantiate(module, imports as Record<string, Record<string, unknown>>);
        const memory = (instance.exports.M as { buffer: ArrayBuffer }).buffer;
        if (i > 0 && holdsMarker(memory, i - 1)) {
          assert.fail(`tenant ${i} sees tenant ${i - 1}'s marker in its memory`);
        }
        const table = instance.exports.O as GuardedTable;
        if (table.length !== initialNulls.length || table.get(nullAt) !== null) {
          assert.fail(`tenant ${i} sees tenant ${i - 1}'s table`);
        }
        return instance;
      });
      const db: SqlDatabase = new sql.Database();
      db.exec(
        `CREATE TABLE m(i INTEGER, marker BLOB); INSERT INTO m VALUES (${i}, ${markerBlob(i)})`,
      );
      const [{ values }] = db.exec("SELECT i, hex(marker) FROM m");
      if (
        values.length !== 1 || values[0][0] !== i ||
        values[0][1] !== markerBlob(i).slice(2, -1).toUpperCase()
      ) {
        assert.fail(`tenant ${i} read ${JSON.stringify(values)}`);
      }
      if (i === 0) {
        assert.ok(
          holdsMarker((instance!.exports.M as { buffer: ArrayBuffer }).buffer, 0),
          "the scan finds a marker",
        );
      }
      const table = instance!.exports.O as GuardedTable;
      table.set(nullAt, table.get((nullAt + 1 + i) % table.length));
      db.close();
      instance!.dispose();
    }
    const stats = engine.stats();
    assert.equal(stats.warmHits, SQL_TENANTS - 1, "every tenant after the first was recycled");
    assert.equal(stats.recycleFallbacks, 0);
  });
});

/** Imports for `bytes` that throw when called: instantiating sql.js runs none of its code. */
function stubImports(bytes: Uint8Array<ArrayBuffer>): WebAssembly.Imports {
  const imports: Record<string, Record<string, unknown>> = {};
  for (const i of WebAssembly.Module.imports(new WebAssembly.Module(bytes))) {
    (imports[i.module] ??= {})[i.name] = () => {
      throw new Error(`stub ${i.module}.${i.name}`);
    };
  }
  return imports as WebAssembly.Imports;
}

/** A xorshift generator: the same script in both runs. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

/** Runs `steps` against an instance's exports, recording what each observable gives. */
function drive(exports: Record<string, unknown>, host: Host, steps: number[][]): unknown[] {
  const t = exports.table as { get(i: number): unknown; set(i: number, v: unknown): void };
  const call = (name: string, ...args: unknown[]): unknown => (exports[name] as Fn)(...args);
  const log: unknown[] = [];
  for (const [op, i] of steps) {
    try {
      switch (op) {
        case 0:
          log.push(call("callAt", i, 7));
          break;
        case 1:
          t.set(i, t.get((i + 1) % 4));
          log.push("set");
          break;
        case 2:
          call("guestSet", i);
          log.push("guest");
          break;
        case 3: {
          const f = t.get(i) as Fn | null;
          log.push(f === null ? null : f(i));
          break;
        }
        case 4:
          host.pick = t.get(3 - i);
          call("take", i);
          log.push("take");
          break;
        case 5:
          call("hand", i);
          log.push(host.seen.length, host.seen.at(-1) === t.get(i));
          break;
        default:
          log.push(call("isNull", i), call("count"));
      }
    } catch (error) {
      log.push(error instanceof WebAssembly.RuntimeError ? "trap" : String(error));
    }
  }
  return log;
}
