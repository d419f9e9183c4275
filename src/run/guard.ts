/**
 * Guarded functions: what a running instance hands out in place of the runtime's own function
 * objects, and what it hands the runtime in place of host functions.
 *
 * - An export is called through a wrapper that throws DisposedError once its instance is
 *   disposed, counts the calls in flight (a group is not released under a running call), and
 *   afterwards checks the aliases of the group's memories (the code may have grown one).
 * - A host function the module imports is called through a wrapper that does that check first,
 *   so the host never reads through an alias the code's growth made stale, and that throws
 *   into the code when its instance was disposed during the call.
 * - A `funcref` never reaches the user raw: results and arguments of that type are wrapped
 *   (guarded by the instance they came out of) or unwrapped (linking the two groups).
 *
 * @module
 */

import { DisposedError } from "../errors.ts";
import type { FuncType } from "../module/types.ts";
import { syncRecords } from "./memory_record.ts";
import { link, releaseIfIdle, type RunState } from "./tenancy.ts";

/** The object the user's references keep alive: an instance's lease, and what it shares. */
export class Lease {
  /** The instance's state. */
  readonly state: RunState;
  /** Wrappers made for raw functions that came out of this instance, by raw function. */
  readonly wrappers: WeakMap<CallableFunction, CallableFunction> = new WeakMap();

  /** The lease of the instance whose state is `state`. */
  constructor(state: RunState) {
    this.state = state;
  }
}

type Callable = (...args: never[]) => unknown;
type AnyFunction = (...args: unknown[]) => unknown;

/** What a guarded wrapper stands for. */
interface Wrapped {
  readonly raw: CallableFunction;
  readonly lease: Lease;
}

// Every guarded wrapper, to unwrap it when it is handed back (imports, tables, globals, args).
const wrapped = new WeakMap<CallableFunction, Wrapped>();

function disposed(lease: Lease): never {
  throw new DisposedError(
    `an export of an instance was called after the instance was disposed` +
      (lease.state.engine.closed ? " (its engine was closed)" : ""),
  );
}

/** Checks the group's aliases after code ran; releases the group if it waited for this call. */
function leave(state: RunState): void {
  state.depth -= 1;
  const group = state.group;
  if (group.records.length !== 0) syncRecords(group.records);
  if (group.pendingRelease) releaseIfIdle(group);
}

/**
 * A guarded wrapper of the raw export `raw` of the instance leased by `lease`, whose signature
 * is `type` (null when unknown: a function that came out of a table or a global).
 */
export function guardExport(
  raw: CallableFunction,
  lease: Lease,
  type: FuncType | null,
): CallableFunction {
  const known = lease.wrappers.get(raw);
  if (known !== undefined) return known;
  const fn = raw as AnyFunction;
  const state = lease.state;
  let guard: CallableFunction;
  if (type === null || type.params.includes("funcref") || type.results.includes("funcref")) {
    guard = guardConverting(fn, lease, type);
  } else {
    // Fixed arity: the runtime converts `undefined` for a missing argument as it would anyway.
    switch (fn.length) {
      case 0:
        guard = function () {
          if (state.dead) disposed(lease);
          state.depth += 1;
          try {
            return fn();
          } finally {
            leave(state);
          }
        };
        break;
      case 1:
        guard = function (a: unknown) {
          if (state.dead) disposed(lease);
          state.depth += 1;
          try {
            return fn(a);
          } finally {
            leave(state);
          }
        };
        break;
      case 2:
        guard = function (a: unknown, b: unknown) {
          if (state.dead) disposed(lease);
          state.depth += 1;
          try {
            return fn(a, b);
          } finally {
            leave(state);
          }
        };
        break;
      case 3:
        guard = function (a: unknown, b: unknown, c: unknown) {
          if (state.dead) disposed(lease);
          state.depth += 1;
          try {
            return fn(a, b, c);
          } finally {
            leave(state);
          }
        };
        break;
      default:
        guard = function (...args: unknown[]) {
          if (state.dead) disposed(lease);
          state.depth += 1;
          try {
            return fn(...args);
          } finally {
            leave(state);
          }
        };
    }
  }
  wrapped.set(guard, { raw, lease });
  lease.wrappers.set(raw, guard);
  return guard;
}

function guardConverting(fn: AnyFunction, lease: Lease, type: FuncType | null): CallableFunction {
  const state = lease.state;
  const params = type?.params;
  const results = type?.results;
  return function (...args: unknown[]) {
    if (state.dead) disposed(lease);
    for (let i = 0; i < args.length; i++) {
      if (params === undefined || params[i] === "funcref") args[i] = unwrapFunction(args[i], state);
    }
    state.depth += 1;
    let result: unknown;
    try {
      result = fn(...args);
    } finally {
      leave(state);
    }
    if (results === undefined) return wrapUnknown(result, lease);
    if (results.length === 1) return results[0] === "funcref" ? wrapFuncref(result, lease) : result;
    if (!results.includes("funcref") || !Array.isArray(result)) return result;
    return result.map((v, i) => results[i] === "funcref" ? wrapFuncref(v, lease) : v);
  };
}

/** A funcref value coming out of the instance leased by `lease`, guarded by it. */
export function wrapFuncref(value: unknown, lease: Lease): unknown {
  if (typeof value !== "function" || wrapped.has(value)) return value;
  return guardExport(value, lease, null);
}

// A value of unknown type: only a function the runtime made for wasm code is guarded (its name
// is its function index, and it is native); a host function passed through externref is not.
function wrapUnknown(value: unknown, lease: Lease): unknown {
  if (Array.isArray(value)) return value.map((v) => wrapUnknown(v, lease));
  if (typeof value !== "function" || wrapped.has(value) || !isWasmFunction(value)) return value;
  return guardExport(value, lease, null);
}

const WASM_FUNCTION = /^function \d+\(\) \{\s*\[native code\]\s*\}$/;

function isWasmFunction(value: CallableFunction): boolean {
  return /^\d+$/.test(value.name) && WASM_FUNCTION.test(Function.prototype.toString.call(value));
}

/**
 * The raw function behind `value` when it is a guarded wrapper, for instance `state` to use:
 * the two instances' groups are linked (each may now run the other's code). Anything else is
 * returned as it is, for the runtime to accept or refuse as it would.
 */
export function unwrapFunction(value: unknown, state: RunState): unknown {
  if (typeof value !== "function") return value;
  const w = wrapped.get(value);
  if (w === undefined) return value;
  link(state, w.lease.state);
  return w.raw;
}

/**
 * The function the runtime calls for host function `fn`, imported by the instance whose state
 * is `state` with signature `type`: the group's aliases are checked before the host runs, and
 * an instance disposed during the call gets a DisposedError thrown into its code afterwards.
 */
export function guardImport(
  fn: Callable,
  lease: Lease,
  type: FuncType,
): CallableFunction {
  const host = fn as AnyFunction;
  const state = lease.state;
  const converting = type.params.includes("funcref") || type.results.includes("funcref");
  if (converting) {
    return function (...args: unknown[]) {
      const records = state.group.records;
      if (records.length !== 0) syncRecords(records);
      for (let i = 0; i < args.length; i++) {
        if (type.params[i] === "funcref") args[i] = wrapFuncref(args[i], lease);
      }
      let result = host(...args);
      if (state.dead) disposed(lease);
      if (type.results.length === 1 && type.results[0] === "funcref") {
        result = unwrapFunction(result, state);
      }
      return result;
    };
  }
  return function (...args: unknown[]) {
    const records = state.group.records;
    if (records.length !== 0) syncRecords(records);
    const result = host(...args);
    if (state.dead) disposed(lease);
    return result;
  };
}
