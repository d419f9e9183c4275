/**
 * Globals: typed values owned by an instance, shareable by import.
 *
 * @module
 */

import { ArgumentError } from "./errors.ts";
import type { ValueType } from "./module/types.ts";
import { checkOptions, type OptionNames } from "./options.ts";

/** The JavaScript form of a global's value: numbers, bigints for i64, indices for refs. */
export type GlobalValue = number | bigint | null | Uint8Array;

/** Converts `value` to the representation of `type`, or throws ArgumentError. */
export function coerce(type: ValueType, value: unknown): GlobalValue {
  switch (type) {
    case "i32":
      if (typeof value === "number") return value | 0;
      break;
    case "f32":
      if (typeof value === "number") return Math.fround(value);
      break;
    case "f64":
      if (typeof value === "number") return value;
      break;
    case "i64":
      if (typeof value === "bigint") return BigInt.asIntN(64, value);
      break;
    case "funcref":
    case "externref":
      if (value === null) return null;
      if (typeof value === "number" && Number.isInteger(value) && value >= 0) return value;
      break;
    case "v128":
      if (value instanceof Uint8Array && value.length === 16) return value.slice();
      break;
  }
  throw new ArgumentError(`a ${type} global cannot hold ${describe(value)}`);
}

function describe(value: unknown): string {
  if (typeof value === "bigint") return `the bigint ${value}`;
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  return `${typeof value === "object" ? (value === null ? "null" : "an object") : value}`;
}

/** What `new Global` takes: the global's type. */
export interface GlobalOptions {
  /** The value type. */
  readonly type: ValueType;
  /** Whether `value` may be set; default false. */
  readonly mutable?: boolean;
}

/** The name of every option of `new Global` (see `checkOptions`). */
const GLOBAL_OPTIONS: OptionNames<GlobalOptions> = { type: true, mutable: true };

// Set while wasmpool itself makes a global from a module's own types (several per
// `allocate`, a hot path), whose names need no check.
let trusted = false;

/** @internal A global of `options` (wasmpool's own, never a user's) holding `value`. */
export function trustedGlobal(options: GlobalOptions, value: unknown): Global {
  trusted = true;
  try {
    return new Global(options, value);
  } finally {
    trusted = false;
  }
}

/** A global: a typed value, mutable or not. */
export class Global {
  /** The value type. */
  readonly type: ValueType;
  /** Whether `value` may be set. */
  readonly mutable: boolean;
  #value: GlobalValue;

  /**
   * A global of `type` holding `value` (a number, a bigint for i64, a function index or null
   * for references). Throws `ArgumentError` for an option it does not know.
   */
  constructor(options: GlobalOptions, value: unknown) {
    if (!trusted) checkOptions(options, GLOBAL_OPTIONS, "new Global()");
    this.type = options.type;
    this.mutable = options.mutable ?? false;
    this.#value = coerce(this.type, value);
  }

  /** The current value. */
  get value(): GlobalValue {
    return this.#value;
  }

  /** Sets the value; throws ArgumentError when immutable or of the wrong type. */
  set value(value: GlobalValue) {
    if (!this.mutable) throw new ArgumentError(`cannot set an immutable ${this.type} global`);
    this.#value = coerce(this.type, value);
  }
}
