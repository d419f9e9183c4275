/**
 * The packaged libraries themselves: the aarch64 one is an aarch64 ELF shared object exporting
 * the same functions as the x86_64 one (exactly those `src/ffi/symbols.ts` declares), both are
 * stripped and need nothing past glibc 2.17. Then, where qemu-user and the aarch64 builds of the
 * pinned runtimes are installed (`script/bootstrap` installs them where apt-get runs), the
 * aarch64 library loads and runs under emulation: in Bun from the installed npm package, and in
 * Deno imported over HTTP from the served JSR file set (fetched, verified, cached). Elsewhere
 * those two are skipped, with the reason. Runs unchanged under `deno test` and `bun test`.
 *
 * @module
 */

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cachePath } from "../src/ffi/library_cache.ts";
import { PACKAGED_GLIBC_VERSION, PACKAGED_LIBRARIES } from "../src/ffi/packaged.ts";
import { SYMBOLS } from "../src/ffi/symbols.ts";
import { ElfMachine, ET_DYN, readElf } from "./fixtures/elf.ts";
import {
  AARCH64,
  aarch64Unavailable,
  bunProject,
  CHILD,
  childEnv,
  childReport,
  DATA,
  DATA_OFFSET,
  denoBinary,
  denoRunFlags,
  describeRun,
  npmPack,
  ROOT,
  run,
  type ServedPackage,
  serveJsrPackage,
  temporaryDirectory,
  testModule,
} from "./fixtures/package.ts";

const x86_64 = PACKAGED_LIBRARIES["x86_64-linux"];
const aarch64 = PACKAGED_LIBRARIES["aarch64-linux"];
const elf = (path: string) => readElf(readFileSync(join(ROOT, path)));

/** Compares dotted versions: negative, zero or positive. */
function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

describe("the packaged libraries", () => {
  it("the aarch64 library is an aarch64 ELF shared object exporting the x86_64 one's functions", () => {
    const arm = elf(aarch64.path);
    const x86 = elf(x86_64.path);
    assert.equal(arm.machine, ElfMachine.aarch64);
    assert.equal(x86.machine, ElfMachine.x86_64);
    assert.equal(arm.type, ET_DYN);
    assert.equal(x86.type, ET_DYN);
    const declared = Object.keys(SYMBOLS).map((name) => `wasmpool_${name}`).sort();
    assert.deepEqual(arm.exportedFunctions, x86.exportedFunctions);
    assert.deepEqual(x86.exportedFunctions, declared);
  });

  for (const [platform, entry] of Object.entries(PACKAGED_LIBRARIES)) {
    it(`${platform}: stripped, and needs glibc ${PACKAGED_GLIBC_VERSION} at most`, () => {
      const info = elf(entry.path);
      const debug = info.sections.filter((s) => s.startsWith(".debug") || s === ".symtab");
      assert.deepEqual(debug, [], "debug information or a symbol table left in");
      for (const library of info.needed) {
        assert.match(library, /^(libc\.so\.6|libpthread\.so\.0|ld-linux-[\w-]+\.so\.[12])$/);
      }
      const glibc = info.versionsNeeded.filter((v) => v.startsWith("GLIBC_"));
      assert.ok(glibc.length > 0, `no glibc versions needed: ${info.versionsNeeded.join(", ")}`);
      for (const version of glibc) {
        assert.ok(
          compareVersions(version.slice("GLIBC_".length), PACKAGED_GLIBC_VERSION) <= 0,
          `${version} is newer than glibc ${PACKAGED_GLIBC_VERSION}`,
        );
      }
    });
  }
});

const unavailable = aarch64Unavailable();
if (unavailable !== null) {
  console.error(`package_aarch64_test: the emulated runs are skipped: ${unavailable}`);
}
const EMULATED_TIMEOUT_MS = 300_000;
const CHILD_TIMEOUT_MS = 240_000;
const work = temporaryDirectory("aarch64");
const wasm = join(work.path, "module.wasm");
writeFileSync(wasm, testModule());
const hexData = Array.from(DATA, (b) => b.toString(16).padStart(2, "0")).join("");
let served: ServedPackage | null = null;

after(async () => {
  await served?.server.close();
  work.remove();
});

/** `qemu-aarch64` running the aarch64 `runtime` with `args`. */
function emulate(runtime: string, args: readonly string[]): [string, string[]] {
  return [AARCH64.qemu, ["-L", AARCH64.sysroot, runtime, ...args]];
}

describe("the aarch64 library under emulation (qemu-user)", () => {
  const skip = unavailable ?? false;

  it("loads and runs in aarch64 Bun, from the installed npm package", {
    skip,
    timeout: EMULATED_TIMEOUT_MS,
  }, async () => {
    const { tarball } = await npmPack(work.path);
    const project = join(work.path, "project");
    const child = await bunProject(project, tarball);
    const [command, args] = emulate(AARCH64.bun, [
      child,
      "@wasmpool/core",
      wasm,
      String(DATA_OFFSET),
      String(DATA.byteLength),
    ]);
    const result = await run(command, args, {
      cwd: project,
      env: childEnv({ WASMPOOL_CACHE: join(work.path, "unused-cache") }),
      timeoutMs: CHILD_TIMEOUT_MS,
    });
    const report = childReport(result);
    assert.ok(report.ok, describeRun(result));
    assert.equal(report.arch, "arm64");
    assert.equal(report.wasmpool, hexData);
    assert.equal(report.webassembly, hexData);
    assert.equal(report.library, join(project, "node_modules/@wasmpool/core", aarch64.path));
  });

  // Deno under emulation takes half a minute: run once, by `deno test`, not again by `bun test`.
  const underBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
  it("loads and runs in aarch64 Deno, fetched over HTTP into the cache and verified", {
    skip: unavailable ?? (underBun ? "the emulated Deno run is deno test's" : false),
    timeout: EMULATED_TIMEOUT_MS,
  }, async () => {
    served = await serveJsrPackage(work.path);
    const cache = join(work.path, "cache");
    const denoDir = join(work.path, "deno-dir");
    // The modules are downloaded and transpiled natively first (DENO_DIR's caches are the same
    // for both architectures); the emulated child still imports them from the server's URL, and
    // fetches the aarch64 library itself.
    const warm = await run(denoBinary(), [
      "cache",
      "--no-config",
      `--allow-import=${served.server.url.host}`,
      new URL("mod.ts", served.server.url).href,
    ], {
      cwd: work.path,
      env: childEnv({ DENO_DIR: denoDir }),
      timeoutMs: CHILD_TIMEOUT_MS,
    });
    assert.equal(warm.status, 0, describeRun(warm));
    const [command, args] = emulate(AARCH64.deno, [
      ...denoRunFlags({ server: served.server, cache, reads: [wasm] }),
      CHILD,
      new URL("mod.ts", served.server.url).href,
      wasm,
      String(DATA_OFFSET),
      String(DATA.byteLength),
    ]);
    const result = await run(command, args, {
      cwd: work.path,
      env: childEnv({ DENO_DIR: denoDir, WASMPOOL_CACHE: cache }),
      timeoutMs: CHILD_TIMEOUT_MS,
    });
    const report = childReport(result);
    assert.ok(report.ok, describeRun(result));
    assert.equal(report.arch, "arm64");
    assert.equal(report.wasmpool, hexData);
    assert.equal(report.library, cachePath(cache, aarch64.sha256));
    assert.equal(served.server.requests.get(`/${aarch64.path}`), 1);
  });
});
