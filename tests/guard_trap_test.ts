/**
 * Guard pages: an access to the first byte past a memory's accessible bytes kills the
 * accessing process (SIGSEGV or SIGBUS), under pooling and on demand. Each case runs
 * `tests/fixtures/guard_child.ts` in a child process of the same runtime. Runs unchanged under
 * `deno test` (which needs `--allow-run`) and `bun test`.
 *
 * @module
 */

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";

const CHILD = decodeURIComponent(new URL("./fixtures/guard_child.ts", import.meta.url).pathname);
const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);

interface DenoApi {
  execPath(): string;
}

/** Runs the child script under this process's runtime. */
function runChild(kind: string, mode: string): SpawnSyncReturns<string> {
  const deno = (globalThis as { Deno?: DenoApi }).Deno;
  const [command, args] = deno !== undefined
    ? [deno.execPath(), ["run", "--allow-ffi", "--allow-read", "--allow-env", CHILD, kind, mode]]
    : [
      (globalThis as unknown as { process: { execPath: string } }).process.execPath,
      [CHILD, kind, mode],
    ];
  const result = spawnSync(command, args, {
    cwd: ROOT,
    encoding: "utf8",
    // A safety net against a hung child, not a timing assertion.
    timeout: 120_000,
  });
  assert.equal(result.error, undefined, `could not run ${command}: ${result.error}`);
  return result;
}

function describeResult(r: SpawnSyncReturns<string>): string {
  return `status ${r.status}, signal ${r.signal}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

/** Whether the child died of a memory access fault (by signal, or as a shell-style status). */
function killedByFault(r: SpawnSyncReturns<string>): boolean {
  if (r.signal === "SIGSEGV" || r.signal === "SIGBUS") return true;
  return r.signal === null && (r.status === 139 || r.status === 138);
}

function lines(output: string): string[] {
  return output.split("\n").map((l) => l.trim());
}

describe("guard pages trap in a child process", () => {
  for (const kind of ["pooling", "pooling-uffd", "on-demand"]) {
    describe(kind, () => {
      for (const mode of ["trap", "shrunk"]) {
        const title = mode === "trap"
          ? "reading the first byte past a 1-page memory kills the process"
          : "the same, in a slot whose previous tenant had grown to 3 pages";
        it(title, () => {
          const r = runChild(kind, mode);
          const out = lines(r.stdout);
          assert.ok(out.includes("ok-before"), `the child failed early: ${describeResult(r)}`);
          assert.ok(!out.includes("survived"), `the guard did not trap: ${describeResult(r)}`);
          assert.ok(killedByFault(r), `not killed by SIGSEGV/SIGBUS: ${describeResult(r)}`);
        });
      }

      it("control: after grow(1) the same address is readable", () => {
        const r = runChild(kind, "grow");
        const out = lines(r.stdout);
        assert.equal(r.signal, null, describeResult(r));
        assert.equal(r.status, 0, describeResult(r));
        assert.ok(out.includes("ok-before"), describeResult(r));
        assert.ok(out.includes("byte 60"), describeResult(r));
        assert.ok(out.includes("survived"), describeResult(r));
      });
    });
  }
});
