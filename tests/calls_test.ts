// Calls through wasmpool's wrappers (a recycled instance's tenant; interruption or fuel on), each
// compiled for the function it wraps (src/run/wrappers.ts): differential against the runtime's
// own instance for every arity from 0 past the most a wrapper names (where it takes a rest
// parameter), with missing, extra and converted arguments; across tenants of many modules and
// warm instances, a stale tenant's wrapper never reaches the next tenant, a trap leaves nothing
// behind, and a deadline beyond 2^32 µs lets a call run.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Config,
  DisposedError,
  Engine,
  type Instance,
  InstanceAllocationStrategy,
  type InstantiateOptions,
  Module,
} from "../mod.ts";
import { MAX_NAMED_PARAMS } from "../src/run/wrappers.ts";
import { buildModule } from "./fixtures/wasm_builder.ts";
import { Op } from "./fixtures/run_modules.ts";

type Fn = (...args: unknown[]) => unknown;

/** Every arity a wrapper names, and two past them (a rest parameter). */
const ARITIES = Array.from({ length: MAX_NAMED_PARAMS + 3 }, (_, i) => i);

interface Kind {
  readonly name: string;
  readonly config: () => Config;
  readonly recycle: boolean;
  readonly options: InstantiateOptions;
}

const KINDS: Kind[] = [
  { name: "recycled", config: () => new Config(), recycle: true, options: {} },
  {
    name: "recycled, interruption, far deadline",
    config: () => new Config().withInterruption(),
    recycle: true,
    options: { deadlineMs: 60_000 },
  },
  {
    name: "recycled, interruption, near deadline (read from the clock)",
    config: () => new Config().withInterruption(),
    recycle: true,
    options: { deadlineMs: 50 },
  },
  {
    name: "recycled, interruption, no deadline",
    config: () => new Config().withInterruption(),
    recycle: true,
    options: {},
  },
  {
    name: "recycled, fuel",
    config: () => new Config().withFuel(),
    recycle: true,
    options: { fuel: 1_000_000 },
  },
  {
    name: "recycled, interruption and fuel",
    config: () => new Config().withInterruption().withFuel(),
    recycle: true,
    options: { deadlineMs: 60_000, fuel: 1_000_000 },
  },
  {
    name: "dedicated, interruption",
    config: () => new Config().withInterruption(),
    recycle: false,
    options: { deadlineMs: 60_000 },
  },
];

function engineOf(kind: Kind, count = 16): Engine {
  return new Engine(
    kind.config().withAllocationStrategy(
      InstanceAllocationStrategy.pooling({
        instanceLimits: { count },
        recycleInstances: kind.recycle,
      }),
    ),
  );
}

/**
 * `f(p0, ..., p(arity-1))` = `tag` + the sum of (i + 1) * p_i, after calling the import
 * `env.hit(tag)`.
 */
function weightedModule(arity: number, tag: number): Uint8Array<ArrayBuffer> {
  const code = [...Op.i32Const(tag), ...Op.call(0), ...Op.i32Const(tag)];
  for (let i = 0; i < arity; i++) {
    code.push(...Op.localGet(i), ...Op.i32Const(i + 1), 0x6c, /* i32.mul */ ...Op.i32Add);
  }
  return buildModule({
    types: [
      { params: new Array(arity).fill("i32"), results: ["i32"] },
      { params: ["i32"], results: [] },
    ],
    imports: [{ module: "env", name: "hit", desc: { kind: "function", type: 1 } }],
    functions: [0, 0],
    exports: [{ name: "f", kind: "function", index: 1 }, {
      name: "trap",
      kind: "function",
      index: 2,
    }],
    bodies: [{ code }, { code: [0x00] }],
  });
}

/** Argument lists for arity `n`: exact, one missing, two extra, and values the call converts. */
function argumentLists(n: number): unknown[][] {
  const exact = Array.from({ length: n }, (_, i) => i * 7 - 3);
  return [
    exact,
    exact.slice(0, Math.max(0, n - 1)),
    [...exact, 99, 100],
    Array.from({ length: n }, (_, i) => [2 ** 32 + 5, -1.5, "7", true, null][i % 5]),
  ];
}

function f(instance: Instance): Fn {
  return instance.exports.f as Fn;
}

for (const kind of KINDS) {
  describe(`calls (${kind.name})`, () => {
    it(`return what the runtime's instance returns, for every arity 0..${ARITIES.at(-1)}`, () => {
      using engine = engineOf(kind);
      for (const arity of ARITIES) {
        const bytes = weightedModule(arity, arity);
        const hits: number[] = [];
        const plain = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
          env: { hit: (t: number) => hits.push(t) },
        }).exports.f as Fn;
        const module = new Module(engine, bytes);
        // Two tenants in turn, so that the second gets the first's warm instance.
        for (let tenant = 0; tenant < 2; tenant++) {
          using instance = engine.instantiate(
            module,
            { env: { hit: (t: number) => hits.push(t) } },
            kind.options,
          );
          for (const args of argumentLists(arity)) {
            assert.equal(f(instance)(...args), plain(...args), `arity ${arity}: ${args}`);
          }
        }
      }
      if (kind.recycle) assert.ok(engine.stats().warmHits >= ARITIES.length);
    });

    it("keep each tenant's wrappers to its own tenancy across modules and warm instances", () => {
      using engine = engineOf(kind);
      const modules = [0, 1, 2, 3, MAX_NAMED_PARAMS + 1].map((arity) =>
        new Module(engine, weightedModule(arity, 10 + arity))
      );
      const stale: { call: Fn; hits: number[] }[] = [];
      for (let round = 0; round < 40; round++) {
        // Three tenants of each module at once: three warm instances of each.
        const live: { instance: Instance; hits: number[]; tag: number }[] = [];
        for (const [m, module] of modules.entries()) {
          for (let i = 0; i < 3; i++) {
            const hits: number[] = [];
            const instance = engine.instantiate(
              module,
              { env: { hit: (t: number) => hits.push(t) } },
              kind.options,
            );
            live.push({ instance, hits, tag: 10 + [0, 1, 2, 3, MAX_NAMED_PARAMS + 1][m] });
          }
        }
        for (const { instance, hits, tag } of live) {
          assert.equal(f(instance)(), tag, "no arguments: each parameter is 0");
          assert.deepEqual(hits, [tag], "the tenant's own import, once");
        }
        for (const { call, hits } of stale) {
          assert.throws(() => call(), DisposedError);
          assert.equal(hits.length, 1, "a stale wrapper reached no tenant's import");
        }
        stale.length = 0;
        for (const { instance, hits } of live) {
          stale.push({ call: f(instance), hits });
          instance.dispose();
        }
      }
      if (kind.recycle) assert.ok(engine.stats().warmHits > 0);
    });

    it("recycle a tenant disposed from inside its own call once the call has returned", () => {
      using engine = engineOf(kind, 1);
      const module = new Module(engine, weightedModule(1, 4));
      let self: Instance | null = null;
      self = engine.instantiate(module, { env: { hit: () => self!.dispose() } }, kind.options);
      assert.throws(() => f(self!)(1), DisposedError);
      using next = engine.instantiate(module, { env: { hit: () => {} } }, kind.options);
      assert.equal(f(next)(2), 6);
      if (kind.recycle) assert.equal(engine.stats().warmHits, 1);
    });

    it("leave nothing behind after a trap: the tenant is recycled, its deadline put back", () => {
      using engine = engineOf(kind, 1);
      const module = new Module(engine, weightedModule(2, 5));
      const imports = { env: { hit: () => {} } };
      for (let i = 0; i < 3; i++) {
        const instance = engine.instantiate(module, imports, kind.options);
        assert.throws(() => (instance.exports.trap as Fn)(), WebAssembly.RuntimeError);
        assert.equal(f(instance)(1, 2), 10);
        instance.dispose();
      }
      if (kind.recycle) assert.equal(engine.stats().warmHits, 2);
    });
  });
}

describe("calls with interruption", () => {
  it("run under a deadline of 2^31 ms, whose end is past 2^32 µs from the epoch", () => {
    using engine = engineOf(KINDS[1]);
    const module = new Module(engine, weightedModule(1, 3));
    using instance = engine.instantiate(module, { env: { hit: () => {} } }, {
      deadlineMs: 2 ** 31,
    });
    for (let i = 0; i < 1000; i++) assert.equal(f(instance)(i), 3 + i);
  });
});
