/**
 * Snapshots of sql.js (Emscripten, issue 17): a database of 10,000 rows built once and
 * snapshotted, then one query per tenant, against building the database per tenant, and
 * against sql.js's own way to skip the build (`new Database(fileBytes)`), each in a new glue
 * and a new instance (sql.js's instances are not recycled: it exports its function table).
 *
 * The database file lives in the glue's JavaScript file system, not in wasm memory: a tenant
 * of the snapshot gets it back with `new Database(fileBytes)` under the original's file name
 * (the glue draws it from `Math.random`), which opens a second connection to it, and then
 * queries through the snapshot's own connection (`db`, the pointer noted before the
 * snapshot), whose page cache and parsed schema are in the snapshot. See the README
 * ("Snapshots", Emscripten) for why this is a demonstration, not a pattern.
 *
 * Prints mitata's table and writes `bench/results/snapshot-sql-<runtime>.json`.
 *
 * @module
 */

import { bench, group, run, summary } from "../.tools/node_modules/mitata/src/main.mjs";
import { RUNTIME, writeResults } from "./mitata_results.ts";
import { Config, Engine, type Instance, InstanceAllocationStrategy, Module } from "../mod.ts";
import { GlueCopies } from "../tests/fixtures/glue_copies.ts";
import { readRealModule, realModules } from "../tests/fixtures/npm_modules.ts";

interface Database {
  filename: string;
  db: number;
  exec(sql: string): { columns: string[]; values: unknown[][] }[];
  export(): Uint8Array;
}
interface Sql {
  Database: new (data?: Uint8Array) => Database;
}
type Init = (options: {
  instantiateWasm(imports: unknown, done: (instance: unknown) => void): unknown;
}) => Promise<Sql>;

const ROWS = 10_000;
const QUERY = "SELECT count(*), sum(c), max(b) FROM t WHERE a % 3 = 0";

const sqlJs = realModules().find((m) => m.name === "sql.js")!;
const glues = new GlueCopies("snapshot-sql");
/** A new glue: sql.js's `initSqlJs` returns its first promise to every later call. */
function glue(): Init {
  return glues.require<Init>(sqlJs.path.replace(/\.wasm$/, ".js"));
}

const engine = new Engine(new Config().withAllocationStrategy(
  InstanceAllocationStrategy.pooling({
    instanceLimits: { count: 8 },
    moduleLimits: { memoryPages: 2048 },
  }),
));
const module = new Module(engine, readRealModule(sqlJs));

async function open(m: Module): Promise<{ SQL: Sql; instance: Instance }> {
  let instance: Instance | null = null;
  const SQL = await glue()({
    instantiateWasm(imports, done) {
      instance = engine.instantiate(m, imports as Record<string, Record<string, unknown>>);
      done(instance);
      return {};
    },
  });
  return { SQL, instance: instance! };
}

function build(SQL: Sql): Database {
  const db = new SQL.Database();
  db.exec("CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c REAL)");
  db.exec(
    "INSERT INTO t(b, c) WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n " +
      `WHERE x < ${ROWS}) SELECT hex(x * 7919), x / 7.0 FROM n`,
  );
  return db;
}

const original = await open(module);
const built = build(original.SQL);
const fileBytes = built.export(); // closes and reopens the connection: noted after
built.exec(QUERY); // the page cache warm, as a tenant's first query leaves it
const expected = JSON.stringify(built.exec(QUERY));
const filename = built.filename;
const connection = built.db;
const snapshot = original.instance.snapshot();

function check(result: unknown): void {
  if (JSON.stringify(result) !== expected) throw new Error(`wrong answer: ${result}`);
}

summary(() => {
  group(`sql.js: one query on a database of ${ROWS} rows, per tenant`, () => {
    bench("build the database per tenant", async () => {
      const { SQL, instance } = await open(module);
      check(build(SQL).exec(QUERY));
      instance.dispose();
    }).baseline(true);
    bench("new Database(fileBytes) per tenant", async () => {
      const { SQL, instance } = await open(module);
      check(new SQL.Database(fileBytes).exec(QUERY));
      instance.dispose();
    });
    bench("a tenant of the snapshot", async () => {
      const { SQL, instance } = await open(snapshot);
      const random = Math.random;
      const drawn = Number(filename.slice("dbfile_".length));
      Math.random = () => (drawn + 0.5) / 4294967295;
      let db: Database;
      try {
        db = new SQL.Database(fileBytes);
      } finally {
        Math.random = random;
      }
      if (db.filename !== filename) throw new Error(`file name ${db.filename}`);
      db.db = connection;
      check(db.exec(QUERY));
      instance.dispose();
    });
  });
});

writeResults(`snapshot-sql-${RUNTIME}`, await run({ format: "mitata" }));
original.instance.dispose();
engine.close();
glues.remove();
