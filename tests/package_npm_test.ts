/**
 * The npm package as a Bun user gets it: `npm pack` of the repository, the tarball installed
 * with `bun add` into a temporary project, `@wasmpool/core` imported by name with no
 * `WASMPOOL_LIB`, the packaged library opened in place (no cache, no network), a module
 * allocated; without `lib/` (as JSR's npm compatibility layer installs a package) the loader
 * turns to the package's files on JSR; on another CPU the error names the platform; and the
 * package's command runs with `bunx`. Runs unchanged under `deno test` and
 * `bun test` (the children are always Bun).
 *
 * @module
 */

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { cachePath, sha256Hex } from "../src/ffi/library_cache.ts";
import { platformKey } from "../src/ffi/load.ts";
import { PACKAGE_NAME, PACKAGE_VERSION, PACKAGED_LIBRARIES } from "../src/ffi/packaged.ts";
import {
  bunBinary,
  bunProject,
  childEnv,
  childReport,
  cliReportProblem,
  DATA,
  DATA_OFFSET,
  describeRun,
  npmPack,
  type PackageFile,
  ROOT,
  run,
  temporaryDirectory,
  testModule,
} from "./fixtures/package.ts";

const CHILD_TIMEOUT_MS = 120_000;
const TEST_TIMEOUT_MS = 300_000;

const work = temporaryDirectory("npm");
const project = join(work.path, "project");
const wasm = join(work.path, "module.wasm");
const cache = join(work.path, "cache");
const hexData = Array.from(DATA, (b) => b.toString(16).padStart(2, "0")).join("");

interface Installed {
  readonly tarball: string;
  readonly files: readonly PackageFile[];
  readonly child: string;
}

let installed: Promise<Installed> | null = null;

/** Packs and installs the package, once, for the first test that needs it. */
function setup(): Promise<Installed> {
  installed ??= (async () => {
    writeFileSync(wasm, testModule());
    const { tarball, files } = await npmPack(work.path);
    const child = await bunProject(project, tarball);
    return { tarball, files, child };
  })();
  return installed;
}

after(() => work.remove());

describe("the npm package", () => {
  it("npm pack carries the libraries and the sources, well inside npm's limits", {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const { tarball, files } = await setup();
    const paths = files.map((f) => f.path);
    for (const entry of Object.values(PACKAGED_LIBRARIES)) {
      const file = files.find((f) => f.path === entry.path);
      assert.ok(file, `${entry.path} is not in the package: ${paths.join(", ")}`);
      assert.equal(file.sizeBytes, entry.sizeBytes);
    }
    for (const path of ["package.json", "mod.ts", "cli.ts", "bin/wasmpool.ts", "README.md"]) {
      assert.ok(paths.includes(path), `${path} is not in the package`);
    }
    assert.deepEqual(paths.filter((p) => /^(tests|zig|bench|script)\//.test(p)), []);
    // npm sets no hard limit but advises small tarballs (10 MiB is "big"): stay far below.
    const tarballBytes = statSync(tarball).size;
    assert.ok(tarballBytes < 1024 * 1024, `the tarball is ${tarballBytes} bytes`);
  });

  it("Bun imports it by name and opens the packaged library in place", {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const { child } = await setup();
    const result = await run(
      bunBinary(),
      [child, "@wasmpool/core", wasm, String(DATA_OFFSET), String(DATA.byteLength)],
      { cwd: project, env: childEnv({ WASMPOOL_CACHE: cache }), timeoutMs: CHILD_TIMEOUT_MS },
    );
    const report = childReport(result);
    assert.ok(report.ok, describeRun(result));
    assert.equal(result.status, 0, describeRun(result));
    assert.equal(report.wasmpool, hexData);
    assert.equal(report.webassembly, hexData);
    const packaged = PACKAGED_LIBRARIES[platformKey()];
    assert.equal(report.library, join(project, "node_modules/@wasmpool/core", packaged.path));
    assert.equal(sha256Hex(readFileSync(report.library)), packaged.sha256);
    assert.ok(!existsSync(cache), "the cache was used for a library the package carries");
  });

  it("an installed copy without lib/ (as JSR's npm layer installs it) turns to JSR's files", {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const { child } = await setup();
    const lib = join(project, "node_modules/@wasmpool/core/lib");
    renameSync(lib, `${lib}.away`);
    const fallbackCache = join(work.path, "fallback-cache");
    try {
      const result = await run(
        bunBinary(),
        [child, "@wasmpool/core", wasm, String(DATA_OFFSET), String(DATA.byteLength)],
        {
          cwd: project,
          env: childEnv({ WASMPOOL_CACHE: fallbackCache }),
          timeoutMs: CHILD_TIMEOUT_MS,
        },
      );
      const report = childReport(result);
      const packaged = PACKAGED_LIBRARIES[platformKey()];
      const url = `https://jsr.io/${PACKAGE_NAME}/${PACKAGE_VERSION}/${packaged.path}`;
      if (report.ok) {
        // Where jsr.io is reachable and the version published: fetched, verified, cached.
        assert.equal(report.library, cachePath(fallbackCache, packaged.sha256));
      } else {
        // Here jsr.io is unreachable: the error names the URL it tried.
        assert.equal(report.failure, "fetch", describeRun(result));
        assert.ok(report.message.includes(url), `${url} not in: ${report.message}`);
      }
    } finally {
      renameSync(`${lib}.away`, lib);
    }
  });

  /** The LibraryError of `new Engine()` in the project, after `prelude`, with `env` added. */
  async function engineError(
    prelude: string,
    env: Record<string, string>,
  ): Promise<{ failure?: string; message?: string }> {
    const script = `${prelude}
      const wasmpool = await import("@wasmpool/core");
      try { new wasmpool.Engine(); console.log("{}"); }
      catch (e) { console.log(JSON.stringify({ failure: e.failure, message: e.message })); }`;
    const result = await run(bunBinary(), ["-e", script], {
      cwd: project,
      env: childEnv({ WASMPOOL_CACHE: cache, ...env }),
      timeoutMs: CHILD_TIMEOUT_MS,
    });
    assert.equal(result.status, 0, describeRun(result));
    return JSON.parse(result.stdout.trim());
  }

  it("on a platform it carries no library for, the error names the platform", {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    await setup();
    const error = await engineError(
      'Object.defineProperty(process, "arch", { value: "riscv64" });',
      {},
    );
    assert.equal(error.failure, "platform", error.message);
    assert.match(error.message ?? "", /this is riscv64-linux/);
    assert.match(error.message ?? "", /x86_64-linux and aarch64-linux/);
  });

  it("a WASMPOOL_LIB that names no file is named", { timeout: TEST_TIMEOUT_MS }, async () => {
    await setup();
    const absent = join(work.path, "absent/libwasmpool.so");
    const error = await engineError("", { WASMPOOL_LIB: absent });
    assert.equal(error.failure, "missing", error.message);
    assert.ok(error.message?.includes(`WASMPOOL_LIB names ${absent}`), error.message);
  });

  it("bunx runs the package's command", { timeout: TEST_TIMEOUT_MS }, async () => {
    await setup();
    const result = await run(
      bunBinary(),
      ["x", "@wasmpool/core", "--cycles", "20", "--json", wasm],
      {
        cwd: project,
        // The command's `#!/usr/bin/env bun` finds the pinned Bun.
        env: childEnv({
          WASMPOOL_CACHE: cache,
          PATH: `${join(ROOT, ".tools/bin")}:${process.env.PATH}`,
        }),
        timeoutMs: CHILD_TIMEOUT_MS,
      },
    );
    assert.equal(result.status, 0, describeRun(result));
    assert.equal(cliReportProblem(result.stdout, 20), null);
  });
});
