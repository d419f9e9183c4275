/**
 * A tenant's wrappers of its recycled instance's functions (`tenantFunction`): each throws
 * DisposedError once the tenant is over and counts the tenant's calls in flight, so that a
 * tenant ended from inside its own call is finished (recycle.ts, `finishTenancy`) when the
 * outermost call returns. Their code is generated per arity and kind of control, then per
 * function once it is called (wrappers.ts): no call site turns megamorphic however many
 * modules and warm instances there are.
 *
 * @module
 */

import { DisposedError } from "../errors.ts";
import { type CallControl, controlledCallSource } from "./calls.ts";
import type { EpochPage } from "./epoch.ts";
import { finishTenancy, type Tenant } from "./recycle.ts";
import { cached, generate, parameters } from "./wrappers.ts";

type Fn = (...args: unknown[]) => unknown;

function disposed(_lease: object): never {
  throw new DisposedError("an export of an instance was called after the instance was disposed");
}

type TenantFactory = (
  tenant: Tenant,
  lease: object,
  control: CallControl | null,
  page: EpochPage | null,
) => Fn;

type SharedFactory = (
  fn: Fn,
  wrapped: Wrapped,
  tenant: Tenant,
  lease: object,
  control: CallControl | null,
  page: EpochPage | null,
) => Fn;

/** What is known of one function of a warm instance, for one kind of wrapper. */
interface Wrapped {
  /** Whether a wrapper of it was called: from the next tenant on, its wrappers get code of
   * their own. */
  called: boolean;
  /** The factory of code compiled for it, or null. */
  factory: TenantFactory | null;
}

// Each wrapped function's record, without checks, with fuel only and with interruption.
const plainWrapped = new WeakMap<object, Wrapped>();
const fuelWrapped = new WeakMap<object, Wrapped>();
const interruptWrapped = new WeakMap<object, Wrapped>();
// Code shared by the functions not yet called, by arity and kind of wrapper.
const sharedFactories = new Map<string, SharedFactory>();

/**
 * The tenant's wrapper of the instance's function `raw`, which `lease` keeps alive: it throws
 * DisposedError once the tenant is over, and counts the call in `tenant.depth`. With `control`
 * (interruption or fuel on), the call goes through it as `CallControl#wrap`'s would, in the
 * same wrapper.
 *
 * A function called through a wrapper gets code of its own for its next tenants' wrappers
 * (wrappers.ts: a call site shared by many functions turns megamorphic); until then, its
 * wrappers share code with every function of its arity. Compiling costs about 30 µs, so it
 * is spent only on functions that are called, of instances that serve a second tenant.
 */
export function tenantFunction(
  tenant: Tenant,
  lease: object,
  raw: CallableFunction,
  control: CallControl | null = null,
): Fn {
  const page = control === null ? null : control.page;
  const kind = control === null ? "plain" : page === null ? "fuel" : "interrupt";
  const records = kind === "plain"
    ? plainWrapped
    : kind === "fuel"
    ? fuelWrapped
    : interruptWrapped;
  const fn = raw as Fn;
  const wrapped = cached(records, raw, (): Wrapped => ({ called: false, factory: null }));
  if (wrapped.factory === null && wrapped.called) {
    wrapped.factory = generate<TenantFactory>(
      ["fn", "disposed", "finishTenancy"],
      [fn, disposed, finishTenancy],
      `return function (tenant, lease, control, page) {
${tenantSource(fn.length, control !== null, page !== null, false)}
};`,
    );
  }
  if (wrapped.factory !== null) return wrapped.factory(tenant, lease, control, page);
  const key = `${fn.length} ${kind}`;
  let shared = sharedFactories.get(key);
  if (shared === undefined) {
    shared = generate<SharedFactory>(
      ["disposed", "finishTenancy"],
      [disposed, finishTenancy],
      `return function (fn, wrapped, tenant, lease, control, page) {
${tenantSource(fn.length, control !== null, page !== null, true)}
};`,
    );
    sharedFactories.set(key, shared);
  }
  return shared(fn, wrapped, tenant, lease, control, page);
}

/**
 * The source returning a tenant's wrapper of `fn`, of `arity` parameters, with a control (and
 * with interruption); a `shared` one records that its function was called.
 */
function tenantSource(
  arity: number,
  controlled: boolean,
  interruption: boolean,
  shared: boolean,
): string {
  const { params, args } = parameters(arity);
  const enter = "tenant.depth++;";
  const leave = "if (--tenant.depth === 0 && tenant.endPending) finishTenancy(tenant);";
  // With a control, its try holds the tenant's bookkeeping too: one try a call.
  const body = controlled
    ? controlledCallSource(`fn(${args})`, interruption, { enter, leave })
    : `${enter}
try {
  return fn(${args});
} finally {
  ${leave}
}`;
  return `return function (${params}) {
  ${shared ? "wrapped.called = true;" : ""}
  if (tenant.dead) disposed(lease);
${body}
};`;
}
