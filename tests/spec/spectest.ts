/**
 * The `spectest` module that spec test files import from, as the reference interpreter
 * defines it: `print`, `print_i32`, `print_i64`, `print_f32`, `print_f64`, `print_i32_f32`,
 * `print_f64_f64` (functions of exactly those types, which print nothing here), the
 * immutable globals `global_i32` and `global_i64` (666), `global_f32` and `global_f64`
 * (666.6), a `table` of 10 to 20 funcref and a `memory` of 1 to 2 pages.
 *
 * Two forms: {@linkcode hostSpectest} makes it from the JS API's host objects (what a
 * module imports from the embedder), and {@linkcode SPECTEST_BINARY} is the same module as
 * a binary, for instantiating it through a backend (so that a candidate's modules import a
 * candidate's memory, table and globals). The functions are wasm functions in both forms,
 * so linking checks their types as the reference interpreter does.
 *
 * @module
 */

import { assemble, funcType, name, sleb, u32, vec } from "./binary.ts";

const PRINTS: readonly [string, readonly string[]][] = [
  ["print", []],
  ["print_i32", ["i32"]],
  ["print_i64", ["i64"]],
  ["print_f32", ["f32"]],
  ["print_f64", ["f64"]],
  ["print_i32_f32", ["i32", "f32"]],
  ["print_f64_f64", ["f64", "f64"]],
];

function f32Bytes(value: number): number[] {
  return [...new Uint8Array(Float32Array.of(value).buffer)];
}

function f64Bytes(value: number): number[] {
  return [...new Uint8Array(Float64Array.of(value).buffer)];
}

function build(full: boolean): Uint8Array<ArrayBuffer> {
  const exports: number[][] = PRINTS.map(([n], i) => [...name(n), 0x00, ...u32(i)]);
  const sections: { id: number; payload: number[] }[] = [
    { id: 1, payload: vec(PRINTS.map(([, params]) => funcType(params, []))) },
    { id: 3, payload: vec(PRINTS.map((_, i) => u32(i))) },
  ];
  if (full) {
    sections.push(
      { id: 4, payload: vec([[0x70, 0x01, 10, 20]]) },
      { id: 5, payload: vec([[0x01, 1, 2]]) },
      {
        id: 6,
        payload: vec([
          [0x7f, 0x00, 0x41, ...sleb(666), 0x0b],
          [0x7e, 0x00, 0x42, ...sleb(666), 0x0b],
          [0x7d, 0x00, 0x43, ...f32Bytes(666.6), 0x0b],
          [0x7c, 0x00, 0x44, ...f64Bytes(666.6), 0x0b],
        ]),
      },
    );
    exports.push(
      [...name("table"), 0x01, 0],
      [...name("memory"), 0x02, 0],
      [...name("global_i32"), 0x03, 0],
      [...name("global_i64"), 0x03, 1],
      [...name("global_f32"), 0x03, 2],
      [...name("global_f64"), 0x03, 3],
    );
  }
  sections.push(
    { id: 7, payload: vec(exports) },
    { id: 10, payload: vec(PRINTS.map(() => [2, 0x00, 0x0b])) },
  );
  return assemble(sections);
}

/** The whole `spectest` module as a binary: functions, globals, table and memory. */
export const SPECTEST_BINARY: Uint8Array<ArrayBuffer> = build(true);

let printModule: WebAssembly.Module | undefined;

/**
 * A fresh `spectest` module made of the JS API's host objects: a new memory, table and
 * globals each call, so that no two runs share state.
 */
export function hostSpectest(): Record<string, unknown> {
  printModule ??= new WebAssembly.Module(build(false));
  const prints = new WebAssembly.Instance(printModule, {}).exports;
  return {
    ...prints,
    global_i32: new WebAssembly.Global({ value: "i32", mutable: false }, 666),
    global_i64: new WebAssembly.Global({ value: "i64", mutable: false }, 666n),
    global_f32: new WebAssembly.Global({ value: "f32", mutable: false }, 666.6),
    global_f64: new WebAssembly.Global({ value: "f64", mutable: false }, 666.6),
    table: new WebAssembly.Table({ element: "anyfunc", initial: 10, maximum: 20 }),
    memory: new WebAssembly.Memory({ initial: 1, maximum: 2 }),
  };
}
