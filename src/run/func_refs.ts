/**
 * Function references that leave a recycled instance, bound to the tenant they left to. The
 * instance outlives its tenants, so a raw function of it kept past a tenant's end would run on
 * the next tenant's state: every funcref that leaves (an exported table's `get`, an exported
 * funcref global's `value`, an export's funcref result, a funcref argument of a host import) is
 * handed out as the tenant's wrapper of it (`tenantFunction`), which throws DisposedError once
 * the tenant is over. Within one tenancy one function has one wrapper, so that
 * `table.get(i) === table.get(i)` as on the runtime's own table; null stays null.
 *
 * Going in (`table.set`, `table.grow`'s init, a global's `value =`, an export's argument, a host
 * import's result), a wrapper of the tenant is replaced by the function it stands for; a wrapper
 * of a tenant that is over throws DisposedError, so that no stale reference can reach a table
 * or global of the next tenant; anything else goes to the runtime as it would before (another
 * instance's function raw, another live tenant's wrapper refused by the runtime's type check).
 *
 * externref tables and globals hold host values: nothing is bound, the reset clears them.
 *
 * @module
 */

import { DisposedError } from "../errors.ts";
import { unwrapFunction } from "./calls.ts";
import type { RefSignature } from "./func_ref_plan.ts";
import type { Tenant } from "./recycle.ts";
import { tenantFunction } from "./tenant_function.ts";

type Fn = (...args: unknown[]) => unknown;

/** What a bound wrapper stands for. */
interface Binding {
  readonly refs: FuncRefs;
  readonly raw: Fn;
}

// Each bound wrapper, to its tenant's references and the runtime's function.
const bindings = new WeakMap<object, Binding>();

/** The function references one tenant of a recycled instance was handed. */
export class FuncRefs {
  /** The tenant. */
  readonly tenant: Tenant;
  readonly #lease: object;
  readonly #wrappers: Map<unknown, Fn> = new Map();

  /** The references of `tenant`, whose wrappers keep `lease` alive (see `tenantFunction`). */
  constructor(tenant: Tenant, lease: object) {
    this.tenant = tenant;
    this.#lease = lease;
  }

  /** What the tenant gets for `raw`, a funcref leaving the instance: its wrapper, or null. */
  out(raw: unknown): unknown {
    if (typeof raw !== "function") return raw;
    let wrapper = this.#wrappers.get(raw);
    if (wrapper === undefined) {
      wrapper = tenantFunction(this.tenant, this.#lease, raw);
      this.#wrappers.set(raw, wrapper);
      bindings.set(wrapper, { refs: this, raw: raw as Fn });
    }
    return wrapper;
  }

  /**
   * Records `wrapper` as the tenant's export of the runtime's function `raw`: the table then
   * hands out the export for that function, as the runtime's own table does.
   */
  exported(wrapper: Fn, raw: CallableFunction): void {
    if (!this.#wrappers.has(raw)) this.#wrappers.set(raw, wrapper);
    bindings.set(wrapper, { refs: this, raw: raw as Fn });
  }

  /** `fn`, an export whose signature has funcrefs in it, binding and unbinding them. */
  exportAdapter(fn: Fn, signature: RefSignature): Fn {
    const adapter = (...args: unknown[]): unknown => {
      for (const p of signature.params) args[p] = refIn(args[p], this);
      return this.#results(fn(...args), signature, (r) => this.out(r));
    };
    Object.defineProperty(adapter, "length", { value: fn.length });
    return adapter;
  }

  /**
   * `host`, a host import whose signature has funcrefs in it, seeing bound wrappers. The warm
   * instance holds it (its trampolines), so it reaches these references weakly: else the instance
   * would keep the lease, and a tenant dropped without dispose() would never be ended.
   */
  importAdapter(host: Fn, signature: RefSignature): Fn {
    const weak = new WeakRef(this);
    return (...args: unknown[]): unknown => {
      const refs = weak.deref();
      if (refs === undefined) {
        throw new DisposedError("an import of a recycled instance was called between tenants");
      }
      for (const p of signature.params) args[p] = refs.out(args[p]);
      return refs.#results(host(...args), signature, (r) => refIn(r, refs));
    };
  }

  #results(result: unknown, signature: RefSignature, map: (r: unknown) => unknown): unknown {
    if (signature.results.length === 0) return result;
    if (signature.resultCount === 1) return map(result);
    const values = Array.from(result as Iterable<unknown>);
    for (const p of signature.results) values[p] = map(values[p]);
    return values;
  }
}

/**
 * What the runtime gets for `value` going into an instance whose tenant's references are
 * `refs` (null: not a recycled tenant): see this file's documentation.
 */
export function refIn(value: unknown, refs: FuncRefs | null): unknown {
  if (typeof value !== "function") return value;
  const binding = bindings.get(value);
  if (binding === undefined) return unwrapFunction(value);
  if (binding.refs.tenant.dead) {
    throw new DisposedError(
      "a function reference was used after the instance it came from was disposed",
    );
  }
  return binding.refs === refs ? binding.raw : value;
}
