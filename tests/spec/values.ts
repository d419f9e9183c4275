/**
 * Values crossing between the spec test commands and JavaScript: arguments made from the
 * commands' values, results matched against the commands' expectations, and results of two
 * backends reduced to strings that compare bit-exactly.
 *
 * The JS API carries i32 as a number, i64 as a BigInt, f32 and f64 as numbers, references as
 * `null`, functions and host objects. A NaN's payload does not survive the trip through a
 * JavaScript number reliably, so a NaN matches any NaN (`nan:canonical`, `nan:arithmetic` and
 * NaN bit patterns alike); every other float compares by its bits, so `-0` is not `+0`.
 * `v128` cannot cross the JS API at all: {@linkcode V128} holds the bytes that the v128
 * adapter (`v128.ts`) moves through two i64 halves.
 *
 * @module
 */

import type { WastValue } from "./commands.ts";

/** A 128-bit vector, as 16 little-endian bytes. */
export class V128 {
  /** The vector's bytes, lane 0 first. */
  readonly bytes: Uint8Array;

  /**
   * Wraps 16 bytes.
   *
   * @param bytes The vector's bytes.
   */
  constructor(bytes: Uint8Array) {
    if (bytes.length !== 16) throw new RangeError(`a v128 has 16 bytes, got ${bytes.length}`);
    this.bytes = bytes;
  }

  /** The vector as two i64 halves (low, high), as the adapter passes it. */
  halves(): [bigint, bigint] {
    const view = new DataView(this.bytes.buffer, this.bytes.byteOffset, 16);
    return [view.getBigInt64(0, true), view.getBigInt64(8, true)];
  }

  /**
   * The vector made of two i64 halves.
   *
   * @param low Bytes 0..7.
   * @param high Bytes 8..15.
   */
  static fromHalves(low: bigint, high: bigint): V128 {
    const bytes = new Uint8Array(16);
    const view = new DataView(bytes.buffer);
    view.setBigInt64(0, low, true);
    view.setBigInt64(8, high, true);
    return new V128(bytes);
  }
}

/** A host reference, `(ref.extern N)`: one object per N, the same for every backend. */
export interface HostRef {
  /** N. */
  readonly hostref: number;
}

const hostRefs = new Map<number, HostRef>();
const hostRefIndex = new WeakMap<object, number>();

/**
 * The host object standing for `(ref.extern n)`: the same object every time, so that a
 * reference that went through a module and came back is recognized by identity.
 *
 * @param n The host reference's index.
 */
export function hostRef(n: number): HostRef {
  let ref = hostRefs.get(n);
  if (ref === undefined) {
    ref = Object.freeze({ hostref: n });
    hostRefs.set(n, ref);
    hostRefIndex.set(ref, n);
  }
  return ref;
}

const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);
const f64 = new Float64Array(1);
const f64Bits = new BigUint64Array(f64.buffer);

/** The f32 whose bits are `bits`, as a number. */
function f32FromBits(bits: number): number {
  f32Bits[0] = bits >>> 0;
  return f32[0];
}

/** The f64 whose bits are `bits`, as a number. */
function f64FromBits(bits: bigint): number {
  f64Bits[0] = BigInt.asUintN(64, bits);
  return f64[0];
}

function f64BitsOf(value: number): bigint {
  f64[0] = value;
  return f64Bits[0];
}

const LANES: Readonly<Record<string, { count: number; bytes: number }>> = {
  i8: { count: 16, bytes: 1 },
  i16: { count: 8, bytes: 2 },
  i32: { count: 4, bytes: 4 },
  i64: { count: 2, bytes: 8 },
  f32: { count: 4, bytes: 4 },
  f64: { count: 2, bytes: 8 },
};

function lanesOf(value: WastValue): { count: number; bytes: number; lanes: readonly string[] } {
  const shape = LANES[value.laneType ?? ""];
  const lanes = value.value;
  if (shape === undefined || !Array.isArray(lanes) || lanes.length !== shape.count) {
    throw new TypeError(`malformed v128 value ${JSON.stringify(value)}`);
  }
  return { ...shape, lanes };
}

/** Reads lane `i` of a vector as unsigned bits. */
function laneBits(bytes: Uint8Array, i: number, size: number): bigint {
  let bits = 0n;
  for (let b = size - 1; b >= 0; b--) bits = (bits << 8n) | BigInt(bytes[i * size + b]);
  return bits;
}

/**
 * The JavaScript value to pass for a command's argument.
 *
 * @param value The argument as the command gives it.
 * @throws TypeError for a value the JS API cannot carry (a non-null funcref, a NaN pattern).
 */
export function toJs(value: WastValue): unknown {
  const v = value.value;
  switch (value.type) {
    case "i32":
      return Number(BigInt.asIntN(32, BigInt(text(value))));
    case "i64":
      return BigInt.asIntN(64, BigInt(text(value)));
    case "f32":
      return f32FromBits(Number(BigInt.asUintN(32, BigInt(text(value)))));
    case "f64":
      return f64FromBits(BigInt(text(value)));
    case "v128": {
      const { bytes: size, lanes } = lanesOf(value);
      const bytes = new Uint8Array(16);
      lanes.forEach((lane, i) => {
        let bits = BigInt.asUintN(size * 8, BigInt(lane));
        for (let b = 0; b < size; b++) {
          bytes[i * size + b] = Number(bits & 0xffn);
          bits >>= 8n;
        }
      });
      return new V128(bytes);
    }
    default:
      if (v === "null") return null;
      if (value.type === "externref" && typeof v === "string") return hostRef(Number(v));
      throw new TypeError(`cannot pass ${describe(value)} through the JS API`);
  }
}

function text(value: WastValue): string {
  if (typeof value.value !== "string") throw new TypeError(`no value in ${describe(value)}`);
  return value.value;
}

function floatMatches(pattern: string, actual: number, bits: number): boolean {
  if (pattern === "nan:canonical" || pattern === "nan:arithmetic") return Number.isNaN(actual);
  const want = bits === 32
    ? f32FromBits(Number(BigInt.asUintN(32, BigInt(pattern))))
    : f64FromBits(BigInt(pattern));
  if (Number.isNaN(want)) return Number.isNaN(actual);
  return Object.is(actual, want);
}

/**
 * Whether a result matches a command's expected value or pattern.
 *
 * @param expected The expected value, as the command gives it.
 * @param actual The result the backend returned.
 */
export function matches(expected: WastValue, actual: unknown): boolean {
  const v = expected.value;
  switch (expected.type) {
    case "either":
      return (expected.values ?? []).some((alt) => matches(alt, actual));
    case "i32":
      return typeof actual === "number" && actual === (actual | 0) &&
        actual === Number(BigInt.asIntN(32, BigInt(text(expected))));
    case "i64":
      return typeof actual === "bigint" &&
        BigInt.asUintN(64, actual) === BigInt.asUintN(64, BigInt(text(expected)));
    case "f32":
      return typeof actual === "number" && Object.is(Math.fround(actual), actual) &&
        floatMatches(text(expected), actual, 32);
    case "f64":
      return typeof actual === "number" && floatMatches(text(expected), actual, 64);
    case "v128": {
      if (!(actual instanceof V128)) return false;
      const { count, bytes: size, lanes } = lanesOf(expected);
      for (let i = 0; i < count; i++) {
        const got = laneBits(actual.bytes, i, size);
        const lane = lanes[i];
        if (expected.laneType === "f32" || expected.laneType === "f64") {
          const got64 = size === 4 ? f32FromBits(Number(got)) : f64FromBits(got);
          if (!floatMatches(lane, got64, size * 8)) return false;
        } else if (got !== BigInt.asUintN(size * 8, BigInt(lane))) {
          return false;
        }
      }
      return true;
    }
    case "funcref":
      return v === "null" ? actual === null : typeof actual === "function";
    case "externref":
      if (v === "null") return actual === null;
      if (v === undefined) return actual !== null;
      return actual === hostRef(Number(v));
    default:
      // Other reference types (anyref, exnref, ...): null, or any non-null reference.
      if (!expected.type.endsWith("ref") && expected.type !== "refnull") return false;
      if (v === "null" || expected.type === "refnull") return actual === null;
      return actual !== null && actual !== undefined;
  }
}

/**
 * A result reduced to a string that is equal for two backends exactly when they returned the
 * same value: numbers by their f64 bits (any NaN is `nan`), BigInts by their 64 bits, host
 * references by their index, functions only as `funcref` (two backends' functions are
 * different objects by design).
 *
 * @param value A result.
 */
export function observe(value: unknown): string {
  switch (typeof value) {
    case "number":
      return Number.isNaN(value) ? "num:nan" : `num:${f64BitsOf(value).toString(16)}`;
    case "bigint":
      return `i64:${BigInt.asUintN(64, value).toString(16)}`;
    case "function":
      return "funcref";
    case "undefined":
      return "undefined";
    case "object": {
      if (value === null) return "null";
      if (value instanceof V128) {
        return `v128:${Array.from(value.bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
      }
      const n = hostRefIndex.get(value);
      return n === undefined ? "object" : `extern:${n}`;
    }
    default:
      return `${typeof value}:${String(value)}`;
  }
}

/**
 * A command's value as the `.wast` text would write it, for failure messages.
 *
 * @param value The value.
 */
export function describe(value: WastValue): string {
  if (value.type === "either") return `(either ${(value.values ?? []).map(describe).join(" ")})`;
  const v = Array.isArray(value.value) ? `${value.laneType} ${value.value.join(" ")}` : value.value;
  return v === undefined ? `(${value.type})` : `(${value.type} ${v})`;
}

/**
 * The results of a call as a list: the JS API returns `undefined` for no result, the value
 * for one, and an array for several.
 *
 * @param result What the call returned.
 * @param count How many results the function has, when known.
 */
export function resultList(result: unknown, count?: number): unknown[] {
  if (count === 1) return [result];
  if (result === undefined) return [];
  if (Array.isArray(result)) return [...result];
  return [result];
}
