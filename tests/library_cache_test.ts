/**
 * The library cache in-process, in both runtimes (Bun fetches the library this way when it was
 * installed without it, from JSR's npm compatibility layer): a fetched library is verified and
 * stored under its digest, found there without a request afterwards, and verified again; a
 * tampered, oversized or missing download, a tampered cache entry, an unwritable cache and a
 * server that never answers each give a LibraryError that names the URL or path; concurrent
 * loads leave one complete file. Also the cache directory and platform names.
 *
 * @module
 */

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { LibraryError } from "../mod.ts";
import { cacheDirectory, cachedLibrary, cachePath, sha256Hex } from "../src/ffi/library_cache.ts";
import { platformKey } from "../src/ffi/load.ts";
import { serveDirectory, type StaticServer, temporaryDirectory } from "./fixtures/package.ts";

const work = temporaryDirectory("cache");
const served = join(work.path, "served");
mkdirSync(served);
const library = new Uint8Array(50_000).map((_, i) => (i * 7919) % 251);
writeFileSync(join(served, "libwasmpool.so"), library);
const sha256 = sha256Hex(library);

let server: StaticServer | null = null;
async function url(path = "libwasmpool.so"): Promise<URL> {
  server ??= await serveDirectory(served);
  return new URL(path, server.url);
}

after(async () => {
  await server?.close();
  work.remove();
});

let caches = 0;
function freshCache(): string {
  return join(work.path, `cache-${caches++}`);
}

function listing(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

async function rejectsWith(
  promise: Promise<unknown>,
  failure: string,
  ...fragments: string[]
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof LibraryError, String(error));
    assert.equal(error.failure, failure, error.message);
    for (const fragment of fragments) {
      assert.ok(error.message.includes(fragment), `"${fragment}" not in: ${error.message}`);
    }
    return true;
  });
}

describe("the library cache", () => {
  it("fetches, verifies and stores under the digest; then finds it without a request", async () => {
    const cacheDir = freshCache();
    const download = { url: await url(), sha256, sizeBytes: library.byteLength };
    const path = await cachedLibrary(download, { cacheDir });
    assert.equal(path, cachePath(cacheDir, sha256));
    assert.deepEqual(readFileSync(path), Buffer.from(library));
    assert.deepEqual(listing(cacheDir), [`libwasmpool-${sha256}.so`]);
    const requests = server!.requests.get("/libwasmpool.so");
    assert.equal(await cachedLibrary(download, { cacheDir }), path);
    assert.equal(server!.requests.get("/libwasmpool.so"), requests);
  });

  it("refuses a download whose digest differs, naming the URL and both digests", async () => {
    const cacheDir = freshCache();
    const tampered = library.slice();
    tampered[123] ^= 1;
    const download = { url: await url("tampered.so"), sha256, sizeBytes: library.byteLength };
    server!.override("/tampered.so", tampered);
    await rejectsWith(
      cachedLibrary(download, { cacheDir }),
      "digest",
      `fetched from ${download.url.href}`,
      sha256Hex(tampered),
      sha256,
      "nothing was written to the cache",
    );
    assert.deepEqual(listing(cacheDir), []);
  });

  it("refuses a longer download without reading past the expected size", async () => {
    const cacheDir = freshCache();
    const download = { url: await url("long.so"), sha256, sizeBytes: library.byteLength };
    server!.override("/long.so", new Uint8Array(library.byteLength * 20));
    await rejectsWith(
      cachedLibrary(download, { cacheDir }),
      "digest",
      `(${library.byteLength + 1} bytes)`,
    );
    assert.deepEqual(listing(cacheDir), []);
  });

  it("names the URL and the HTTP status of a missing library", async () => {
    const download = { url: await url("absent.so"), sha256, sizeBytes: library.byteLength };
    await rejectsWith(
      cachedLibrary(download, { cacheDir: freshCache() }),
      "fetch",
      download.url.href,
      "HTTP 404",
    );
  });

  it("refuses a cached file whose digest differs, naming its path", async () => {
    const cacheDir = freshCache();
    mkdirSync(cacheDir);
    const tampered = library.slice();
    tampered[0] ^= 1;
    const path = cachePath(cacheDir, sha256);
    writeFileSync(path, tampered);
    await rejectsWith(
      cachedLibrary({ url: await url(), sha256, sizeBytes: library.byteLength }, { cacheDir }),
      "digest",
      `the cached wasmpool native library ${path}`,
      "delete it",
    );
  });

  it("names the cache directory it cannot make", async () => {
    const blocker = join(work.path, "a-file");
    writeFileSync(blocker, "not a directory");
    const cacheDir = join(blocker, "cache");
    await rejectsWith(
      cachedLibrary({ url: await url(), sha256, sizeBytes: library.byteLength }, { cacheDir }),
      "cache",
      cacheDir,
      "WASMPOOL_CACHE",
    );
  });

  it(
    "gives up on a server that never answers, naming the timeout",
    { timeout: 30_000 },
    async () => {
      const silent = createServer(() => {/* never answers */});
      await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
      const { port } = silent.address() as AddressInfo;
      const download = {
        url: new URL(`http://127.0.0.1:${port}/libwasmpool.so`),
        sha256,
        sizeBytes: library.byteLength,
      };
      try {
        await rejectsWith(
          cachedLibrary(download, { cacheDir: freshCache(), timeoutMs: 300 }),
          "fetch",
          download.url.href,
          "no complete response within 300 ms",
        );
      } finally {
        (silent as { closeAllConnections?(): void }).closeAllConnections?.();
        await new Promise<void>((resolve) => silent.close(() => resolve()));
      }
    },
  );

  it("concurrent loads leave exactly one complete file", { timeout: 30_000 }, async () => {
    const cacheDir = freshCache();
    const download = { url: await url(), sha256, sizeBytes: library.byteLength };
    server!.slow("/libwasmpool.so", 200);
    try {
      const paths = await Promise.all(
        Array.from({ length: 8 }, () => cachedLibrary(download, { cacheDir })),
      );
      assert.deepEqual(new Set(paths), new Set([cachePath(cacheDir, sha256)]));
    } finally {
      server!.slow("/libwasmpool.so", null);
    }
    assert.deepEqual(listing(cacheDir), [`libwasmpool-${sha256}.so`]);
    assert.equal(sha256Hex(readFileSync(cachePath(cacheDir, sha256))), sha256);
  });
});

describe("the cache directory", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  const denied = (name: string): string => {
    const error = new Error(`Requires env access to "${name}"`);
    error.name = "NotCapable";
    throw error;
  };

  it("is WASMPOOL_CACHE, else the platform's cache directory", () => {
    assert.equal(cacheDirectory(env({ WASMPOOL_CACHE: "/c", HOME: "/h" }), "linux"), "/c");
    assert.equal(
      cacheDirectory(env({ XDG_CACHE_HOME: "/x", HOME: "/h" }), "linux"),
      "/x/wasmpool",
    );
    assert.equal(cacheDirectory(env({ HOME: "/h" }), "linux"), "/h/.cache/wasmpool");
    assert.equal(cacheDirectory(env({ HOME: "/h" }), "darwin"), "/h/Library/Caches/wasmpool");
  });

  it("names --allow-env when the variables may not be read", () => {
    assert.throws(() => cacheDirectory(denied, "linux"), (error: unknown) => {
      assert.ok(error instanceof LibraryError);
      assert.equal(error.failure, "permission");
      assert.match(error.message, /--allow-env=WASMPOOL_CACHE,XDG_CACHE_HOME,HOME/);
      return true;
    });
  });

  it("asks for WASMPOOL_CACHE when no variable is set", () => {
    assert.throws(() => cacheDirectory(env({}), "linux"), /set WASMPOOL_CACHE/);
  });
});

describe("the platform key", () => {
  it("uses Zig's names, as lib/ and packaged.ts do", () => {
    assert.equal(platformKey("x64", "linux"), "x86_64-linux");
    assert.equal(platformKey("arm64", "linux"), "aarch64-linux");
    assert.equal(platformKey("arm64", "darwin"), "aarch64-macos");
  });
});
