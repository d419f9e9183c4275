/**
 * The JSR package as a Deno user gets it. The file set `deno publish --dry-run` lists is copied
 * into a temporary directory and served on 127.0.0.1, as JSR serves a package's files; child
 * Deno processes (no `WASMPOOL_LIB`, the least permissions) import `mod.ts` from that URL, so the
 * loader fetches the library from beside it into an empty cache, verifies it and opens it; then
 * a second child uses the cache without the network, tampered libraries are refused, missing
 * permissions are named, concurrent first loads share the cache safely, and the CLI runs from
 * the URL. Runs unchanged under `deno test` and `bun test` (the children are always Deno).
 *
 * @module
 */

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { cachePath, sha256Hex } from "../src/ffi/library_cache.ts";
import { platformKey } from "../src/ffi/load.ts";
import { PACKAGED_LIBRARIES } from "../src/ffi/packaged.ts";
import {
  CHILD,
  childEnv,
  childReport,
  cliReportProblem,
  DATA,
  DATA_OFFSET,
  denoBinary,
  type DenoChildOptions,
  denoRunFlags,
  describeRun,
  run,
  type RunResult,
  type ServedPackage,
  serveJsrPackage,
  temporaryDirectory,
  testModule,
} from "./fixtures/package.ts";

const CHILD_TIMEOUT_MS = 120_000;
const TEST_TIMEOUT_MS = 300_000;

const work = temporaryDirectory("jsr");
const wasm = join(work.path, "module.wasm");
const denoDir = join(work.path, "deno-dir");
const packaged = PACKAGED_LIBRARIES[platformKey()];
const hexData = Array.from(DATA, (b) => b.toString(16).padStart(2, "0")).join("");

let served: Promise<ServedPackage> | null = null;

/** The served package, set up by the first test that needs it. */
function setup(): Promise<ServedPackage> {
  if (served === null) {
    writeFileSync(wasm, testModule());
    served = serveJsrPackage(work.path);
  }
  return served;
}

after(async () => {
  if (served !== null) await (await served.catch(() => null))?.server.close();
  work.remove();
});

let caches = 0;
/** A new, empty cache directory (not made: the loader makes it). */
function freshCache(): string {
  return join(work.path, `cache-${caches++}`);
}

/** Runs the child under Deno with `options`' permissions, importing the served `mod.ts`. */
async function denoChild(
  options: Omit<DenoChildOptions, "server" | "reads">,
): Promise<RunResult> {
  const { server } = await setup();
  return run(
    denoBinary(),
    [
      ...denoRunFlags({ ...options, server, reads: [wasm] }),
      CHILD,
      new URL("mod.ts", server.url).href,
      wasm,
      String(DATA_OFFSET),
      String(DATA.byteLength),
    ],
    {
      cwd: work.path,
      env: childEnv({ DENO_DIR: denoDir, WASMPOOL_CACHE: options.cache }),
      timeoutMs: CHILD_TIMEOUT_MS,
    },
  );
}

function listing(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

const libraryUrlPath = `/${packaged.path}`;

describe("the JSR package", () => {
  it("deno publish --dry-run passes and lists the libraries, well inside JSR's limits", {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const { dryRun, files } = await setup();
    assert.equal(dryRun.status, 0, describeRun(dryRun));
    const paths = files.map((f) => f.path);
    for (const entry of Object.values(PACKAGED_LIBRARIES)) {
      const file = files.find((f) => f.path === entry.path);
      assert.ok(file, `${entry.path} is not in the package: ${paths.join(", ")}`);
      assert.equal(
        file.sizeBytes,
        entry.sizeBytes,
        `${entry.path} is not the build packaged.ts lists`,
      );
    }
    for (const path of ["mod.ts", "cli.ts", "src/ffi/packaged.ts", "README.md", "LICENSE"]) {
      assert.ok(paths.includes(path), `${path} is not in the package`);
    }
    assert.deepEqual(paths.filter((p) => /^(tests|zig|bench|script|\.tools)\//.test(p)), []);
    // JSR: at most 20 MB per file and per package version. Stay under a tenth of it.
    const totalBytes = files.reduce((sum, f) => sum + f.sizeBytes, 0);
    assert.ok(totalBytes < 2 * 1024 * 1024, `the package is ${totalBytes} bytes`);
  });

  it("deno doc --lint mod.ts cli.ts is clean", { timeout: TEST_TIMEOUT_MS }, async () => {
    const result = await run(denoBinary(), ["doc", "--lint", "mod.ts", "cli.ts"], {
      env: childEnv({ DENO_DIR: join(work.path, "doc-deno-dir") }),
      timeoutMs: CHILD_TIMEOUT_MS,
    });
    assert.equal(result.status, 0, describeRun(result));
  });

  const firstCache = freshCache();

  it("imported over HTTP with an empty cache, it fetches, verifies and caches the library", {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const { server } = await setup();
    const result = await denoChild({ cache: firstCache });
    const report = childReport(result);
    assert.ok(report.ok, describeRun(result));
    assert.equal(result.status, 0, describeRun(result));
    assert.equal(report.wasmpool, hexData);
    assert.equal(report.webassembly, hexData);
    assert.equal(report.library, cachePath(firstCache, packaged.sha256));
    assert.deepEqual(listing(firstCache), [`libwasmpool-${packaged.sha256}.so`]);
    assert.equal(sha256Hex(readFileSync(report.library)), packaged.sha256);
    assert.equal(server.requests.get(libraryUrlPath), 1);
  });

  it("a second child uses the cache, with neither the network nor --allow-net", {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const { server } = await setup();
    const requestsBefore = [...server.requests.values()].reduce((a, b) => a + b, 0);
    const result = await denoChild({
      cache: firstCache,
      net: false,
      write: false,
      cachedOnly: true,
    });
    const report = childReport(result);
    assert.ok(report.ok, describeRun(result));
    assert.equal(report.wasmpool, hexData);
    assert.equal(report.library, cachePath(firstCache, packaged.sha256));
    const requestsAfter = [...server.requests.values()].reduce((a, b) => a + b, 0);
    assert.equal(requestsAfter, requestsBefore, "the second child made requests");
  });

  it("the CLI runs from the served URL", { timeout: TEST_TIMEOUT_MS }, async () => {
    const { server } = await setup();
    const result = await run(
      denoBinary(),
      [
        "run",
        "--no-config",
        "--no-prompt",
        `--allow-import=${server.url.host}`,
        "--allow-read",
        "--allow-env",
        "--allow-ffi",
        new URL("cli.ts", server.url).href,
        "--cycles",
        "20",
        "--json",
        wasm,
      ],
      {
        cwd: work.path,
        env: childEnv({ DENO_DIR: denoDir, WASMPOOL_CACHE: firstCache }),
        timeoutMs: CHILD_TIMEOUT_MS,
      },
    );
    assert.equal(result.status, 0, describeRun(result));
    assert.equal(cliReportProblem(result.stdout, 20), null);
  });

  it("a tampered library on the server is refused with the digest error; nothing is cached", {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const { server } = await setup();
    const tampered = readFileSync(join(work.path, "served", packaged.path));
    tampered[tampered.byteLength >> 1] ^= 0xff;
    server.override(libraryUrlPath, tampered);
    const cache = freshCache();
    try {
      const result = await denoChild({ cache });
      const report = childReport(result);
      assert.ok(!report.ok, describeRun(result));
      assert.notEqual(result.status, 0);
      assert.equal(report.name, "LibraryError");
      assert.equal(report.failure, "digest");
      assert.match(
        report.message,
        new RegExp(`fetched from ${new URL(packaged.path, server.url)}`),
      );
      assert.ok(report.message.includes(sha256Hex(tampered)), report.message);
      assert.ok(report.message.includes(packaged.sha256), report.message);
      assert.deepEqual(listing(cache), []);
    } finally {
      server.override(libraryUrlPath, null);
    }
  });

  it("a tampered library in the cache is refused with the digest error", {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    await setup();
    const cache = freshCache();
    mkdirSync(cache);
    const path = cachePath(cache, packaged.sha256);
    copyFileSync(cachePath(firstCache, packaged.sha256), path);
    const bytes = readFileSync(path);
    bytes[100] ^= 0xff;
    writeFileSync(path, bytes);
    const result = await denoChild({ cache, net: false, write: false, cachedOnly: true });
    const report = childReport(result);
    assert.ok(!report.ok, describeRun(result));
    assert.equal(report.failure, "digest");
    assert.ok(
      report.message.includes(`the cached wasmpool native library ${path}`),
      report.message,
    );
    assert.ok(report.message.includes(packaged.sha256), report.message);
  });

  it("a missing permission is named: --allow-net, --allow-write, --allow-env", {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const { server } = await setup();
    const cases = [
      { take: { net: false }, flag: `--allow-net=${server.url.host}` },
      { take: { write: false }, flag: "--allow-write=" },
      { take: { env: false }, flag: "--allow-env=" },
    ];
    for (const { take, flag } of cases) {
      const cache = freshCache();
      const result = await denoChild({ cache, ...take });
      const report = childReport(result);
      assert.ok(!report.ok, describeRun(result));
      assert.equal(report.failure, "permission", report.message);
      assert.ok(report.message.includes(flag), `${flag} not named: ${report.message}`);
      assert.deepEqual(listing(cache), []);
    }
  });

  it("concurrent first loads (several processes) never see a partial file", {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const { server } = await setup();
    // Each download stalls half way, so the children overlap while the file is incomplete.
    server.slow(libraryUrlPath, 500);
    const cache = freshCache();
    const requestsBefore = server.requests.get(libraryUrlPath) ?? 0;
    try {
      const results = await Promise.all(
        Array.from({ length: 4 }, () => denoChild({ cache })),
      );
      for (const result of results) {
        const report = childReport(result);
        assert.ok(report.ok, describeRun(result));
        assert.equal(report.library, cachePath(cache, packaged.sha256));
        assert.equal(report.wasmpool, hexData);
      }
      assert.deepEqual(listing(cache), [`libwasmpool-${packaged.sha256}.so`]);
      assert.equal(sha256Hex(readFileSync(cachePath(cache, packaged.sha256))), packaged.sha256);
      // At least two downloads overlapped (each stalls 500 ms half way through).
      const downloads = (server.requests.get(libraryUrlPath) ?? 0) - requestsBefore;
      assert.ok(downloads >= 2, `only ${downloads} download(s): the children did not overlap`);
    } finally {
      server.slow(libraryUrlPath, null);
    }
  });
});
