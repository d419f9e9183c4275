#!/usr/bin/env bun
/**
 * The npm package's command, `wasmpool`: the demo of `cli.ts` under Bun, as
 * `bunx @wasmpool/core [--cycles N] [--json] [module.wasm]` runs it.
 *
 * @module
 */

import process from "node:process";
import { main } from "../cli.ts";

process.exitCode = main(process.argv.slice(2));
