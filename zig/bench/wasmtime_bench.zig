//! Wasmtime's floor without FFI: the cycle bench/wasmtime_bench.ts times from Deno and Bun
//! (`wasmtime_store_new` + `wasmtime_store_context` + `wasmtime_instance_pre_instantiate` +
//! `wasmtime_store_delete`, on an InstancePre made once per module), called from Zig, linked
//! against the same `_libwasmtime.so` (Wasmtime 50.0.1, pinned by script/bootstrap). The engines
//! are configured as the TypeScript bench configures them (bench/wasmtime/mod.ts): pooling with
//! copy-on-write images, pooling without them, on-demand with them; pools of 100 instances,
//! memories and tables.
//!
//! The modules are bench/image_modules.ts's, written to a directory by
//! `deno run -A bench/image_modules.ts <directory>` (`modules.json` names each file and its
//! group title), so both sides measure the same bytes and the report puts this bench's
//! medians in the same tables (runtime "zig-native").
//!
//! Usage: `zig build wasmtime-bench -- <modules directory> [<output json>]` (default output
//! `bench/results/wasmtime-zig-native.json`, relative to the repository root). Any Wasmtime
//! call that fails prints Wasmtime's message and exits with status 1.

const std = @import("std");

// Wasmtime's C API (crates/c-api/include/, 50.x), the part this bench calls. Opaque types are
// only ever handled by pointer.
const wasm_config_t = opaque {};
const wasm_engine_t = opaque {};
const wasmtime_pooling_allocation_config_t = opaque {};
const wasmtime_module_t = opaque {};
const wasmtime_linker_t = opaque {};
const wasmtime_instance_pre_t = opaque {};
const wasmtime_store_t = opaque {};
const wasmtime_context_t = opaque {};
const wasmtime_error_t = opaque {};
const wasm_trap_t = opaque {};
/// `wasm_byte_vec_t`: `{ size_t size; wasm_byte_t *data; }`.
const wasm_byte_vec_t = extern struct { size: usize, data: ?[*]u8 };
/// `wasmtime_instance_t`: `{ uint64_t store_id; size_t __private; }`.
const wasmtime_instance_t = extern struct { store_id: u64, private: usize };
const finalizer_t = ?*const fn (?*anyopaque) callconv(.c) void;

extern fn wasm_config_new() ?*wasm_config_t;
extern fn wasmtime_config_memory_init_cow_set(*wasm_config_t, bool) void;
extern fn wasmtime_pooling_allocation_config_new() ?*wasmtime_pooling_allocation_config_t;
extern fn wasmtime_pooling_allocation_config_delete(*wasmtime_pooling_allocation_config_t) void;
extern fn wasmtime_pooling_allocation_config_total_core_instances_set(*wasmtime_pooling_allocation_config_t, u32) void;
extern fn wasmtime_pooling_allocation_config_total_memories_set(*wasmtime_pooling_allocation_config_t, u32) void;
extern fn wasmtime_pooling_allocation_config_total_tables_set(*wasmtime_pooling_allocation_config_t, u32) void;
extern fn wasmtime_pooling_allocation_strategy_set(*wasm_config_t, *const wasmtime_pooling_allocation_config_t) void;
extern fn wasm_engine_new_with_config(*wasm_config_t) ?*wasm_engine_t;
extern fn wasm_engine_delete(*wasm_engine_t) void;
extern fn wasmtime_module_new(*wasm_engine_t, [*]const u8, usize, *?*wasmtime_module_t) ?*wasmtime_error_t;
extern fn wasmtime_module_delete(*wasmtime_module_t) void;
extern fn wasmtime_linker_new(*wasm_engine_t) ?*wasmtime_linker_t;
extern fn wasmtime_linker_delete(*wasmtime_linker_t) void;
extern fn wasmtime_linker_define_unknown_imports_as_traps(*wasmtime_linker_t, *const wasmtime_module_t) ?*wasmtime_error_t;
extern fn wasmtime_linker_instantiate_pre(*const wasmtime_linker_t, *const wasmtime_module_t, *?*wasmtime_instance_pre_t) ?*wasmtime_error_t;
extern fn wasmtime_instance_pre_delete(*wasmtime_instance_pre_t) void;
extern fn wasmtime_store_new(*wasm_engine_t, ?*anyopaque, finalizer_t) ?*wasmtime_store_t;
extern fn wasmtime_store_context(*wasmtime_store_t) *wasmtime_context_t;
extern fn wasmtime_instance_pre_instantiate(*const wasmtime_instance_pre_t, *wasmtime_context_t, *wasmtime_instance_t, *?*wasm_trap_t) ?*wasmtime_error_t;
extern fn wasmtime_store_delete(*wasmtime_store_t) void;
extern fn wasmtime_error_message(*const wasmtime_error_t, *wasm_byte_vec_t) void;
extern fn wasmtime_error_delete(*wasmtime_error_t) void;
extern fn wasm_trap_message(*const wasm_trap_t, *wasm_byte_vec_t) void;
extern fn wasm_trap_delete(*wasm_trap_t) void;
extern fn wasm_byte_vec_delete(*wasm_byte_vec_t) void;

/// The pool size of every pooling engine: bench/wasmtime_bench.ts's POOL_SIZE.
const pool_size = 100;
/// Rounds per case; the median is reported.
const rounds = 7;
/// Each round runs about this long (at least one cycle, at most `iterations_max`).
const round_target_ns = 50 * std.time.ns_per_ms;
const iterations_max = 200_000;
/// The manifest's limits: a few modules with short names.
const modules_max = 16;
const manifest_bytes_max = 64 * 1024;
const module_bytes_max = 64 * 1024 * 1024;

const EngineCase = struct {
    /// The row name: bench/wasmtime_bench.ts uses the same names.
    name: []const u8,
    pooling: bool,
    memory_init_cow: bool,
    /// The group's baseline.
    baseline: bool,
};

const engine_cases = [_]EngineCase{
    .{ .name = "Wasmtime pooling + CoW", .pooling = true, .memory_init_cow = true, .baseline = true },
    .{ .name = "Wasmtime pooling, no CoW", .pooling = true, .memory_init_cow = false, .baseline = false },
    .{ .name = "Wasmtime on-demand + CoW", .pooling = false, .memory_init_cow = true, .baseline = false },
};

/// One entry of `modules.json` (bench/image_modules.ts, writeBenchModules).
const ManifestEntry = struct { name: []const u8, group: []const u8, file: []const u8 };

/// One row of the output, in the shape bench/report.ts reads.
const Row = struct {
    name: []const u8,
    group: []const u8,
    baseline: bool,
    median_ns: f64,
    min_ns: f64,
    max_ns: f64,
    iterations: u32,
};

/// Prints what Wasmtime says of `error` (freeing it) and exits with status 1.
fn fail_error(call: []const u8, err: *wasmtime_error_t) noreturn {
    var message: wasm_byte_vec_t = .{ .size = 0, .data = null };
    wasmtime_error_message(err, &message);
    const text = if (message.data) |data| data[0..message.size] else "";
    std.debug.print("wasmtime_bench: {s} failed: {s}\n", .{ call, text });
    wasm_byte_vec_delete(&message);
    wasmtime_error_delete(err);
    std.process.exit(1);
}

fn fail_trap(call: []const u8, trap: *wasm_trap_t) noreturn {
    var message: wasm_byte_vec_t = .{ .size = 0, .data = null };
    wasm_trap_message(trap, &message);
    const text = if (message.data) |data| data[0..message.size] else "";
    std.debug.print("wasmtime_bench: {s} trapped: {s}\n", .{ call, text });
    wasm_byte_vec_delete(&message);
    wasm_trap_delete(trap);
    std.process.exit(1);
}

fn fail_null(call: []const u8) noreturn {
    std.debug.print("wasmtime_bench: {s} returned null\n", .{call});
    std.process.exit(1);
}

fn check(call: []const u8, err: ?*wasmtime_error_t) void {
    if (err) |e| fail_error(call, e);
}

fn engine_create(case: EngineCase) *wasm_engine_t {
    const config = wasm_config_new() orelse fail_null("wasm_config_new");
    wasmtime_config_memory_init_cow_set(config, case.memory_init_cow);
    if (case.pooling) {
        const pooling = wasmtime_pooling_allocation_config_new() orelse
            fail_null("wasmtime_pooling_allocation_config_new");
        wasmtime_pooling_allocation_config_total_core_instances_set(pooling, pool_size);
        wasmtime_pooling_allocation_config_total_memories_set(pooling, pool_size);
        wasmtime_pooling_allocation_config_total_tables_set(pooling, pool_size);
        wasmtime_pooling_allocation_strategy_set(config, pooling);
        wasmtime_pooling_allocation_config_delete(pooling);
    }
    // Takes the config.
    return wasm_engine_new_with_config(config) orelse fail_null("wasm_engine_new_with_config");
}

fn instance_pre_create(engine: *wasm_engine_t, bytes: []const u8) *wasmtime_instance_pre_t {
    var module_out: ?*wasmtime_module_t = null;
    check("wasmtime_module_new", wasmtime_module_new(engine, bytes.ptr, bytes.len, &module_out));
    const module = module_out orelse fail_null("wasmtime_module_new");
    defer wasmtime_module_delete(module);
    const linker = wasmtime_linker_new(engine) orelse fail_null("wasmtime_linker_new");
    defer wasmtime_linker_delete(linker);
    check(
        "wasmtime_linker_define_unknown_imports_as_traps",
        wasmtime_linker_define_unknown_imports_as_traps(linker, module),
    );
    var pre_out: ?*wasmtime_instance_pre_t = null;
    check("wasmtime_linker_instantiate_pre", wasmtime_linker_instantiate_pre(linker, module, &pre_out));
    return pre_out orelse fail_null("wasmtime_linker_instantiate_pre");
}

/// The measured cycle.
inline fn cycle(engine: *wasm_engine_t, pre: *const wasmtime_instance_pre_t) void {
    const store = wasmtime_store_new(engine, null, null) orelse fail_null("wasmtime_store_new");
    var instance: wasmtime_instance_t = undefined;
    var trap: ?*wasm_trap_t = null;
    const err = wasmtime_instance_pre_instantiate(pre, wasmtime_store_context(store), &instance, &trap);
    if (err) |e| fail_error("wasmtime_instance_pre_instantiate", e);
    if (trap) |t| fail_trap("wasmtime_instance_pre_instantiate", t);
    wasmtime_store_delete(store);
}

fn run_cycles(engine: *wasm_engine_t, pre: *const wasmtime_instance_pre_t, iterations: u32) u64 {
    var timer = std.time.Timer.start() catch @panic("no monotonic clock");
    for (0..iterations) |_| cycle(engine, pre);
    return timer.read();
}

fn measure(case: EngineCase, engine: *wasm_engine_t, pre: *const wasmtime_instance_pre_t, group: []const u8) Row {
    // Warm up (the first cycle faults in the slot, the image mapping, the allocator's lists)
    // and calibrate on batches of doubling size, at least four, for a fifth of a round. The
    // fastest batch sets the count, so a batch that lost the CPU to another process does not
    // shrink the rounds.
    _ = run_cycles(engine, pre, 1);
    var batch: u32 = 1;
    var spent_ns: u64 = 0;
    var fastest_ns: u64 = std.math.maxInt(u64);
    while ((spent_ns < round_target_ns / 5 or batch < 16) and batch < iterations_max) : (batch *= 2) {
        const elapsed_ns = run_cycles(engine, pre, batch);
        spent_ns += elapsed_ns;
        fastest_ns = @min(fastest_ns, elapsed_ns / batch);
    }
    const iterations: u32 = @intCast(std.math.clamp(round_target_ns / @max(1, fastest_ns), 1, iterations_max));
    var per_cycle: [rounds]f64 = undefined;
    for (&per_cycle) |*ns| {
        const elapsed_ns = run_cycles(engine, pre, iterations);
        ns.* = @as(f64, @floatFromInt(elapsed_ns)) / @as(f64, @floatFromInt(iterations));
    }
    std.mem.sort(f64, &per_cycle, {}, std.sort.asc(f64));
    return .{
        .name = case.name,
        .group = group,
        .baseline = case.baseline,
        .median_ns = per_cycle[rounds / 2],
        .min_ns = per_cycle[0],
        .max_ns = per_cycle[rounds - 1],
        .iterations = iterations,
    };
}

pub fn main() !void {
    var arena_state = std.heap.ArenaAllocator.init(std.heap.page_allocator);
    defer arena_state.deinit();
    const arena = arena_state.allocator();
    const args = try std.process.argsAlloc(arena);
    if (args.len < 2) {
        std.debug.print("usage: wasmtime_bench <modules directory> [<output json>]\n" ++
            "(write the directory with `deno run -A bench/image_modules.ts <directory>`)\n", .{});
        std.process.exit(2);
    }
    var dir = try std.fs.cwd().openDir(args[1], .{});
    defer dir.close();
    const out_path = if (args.len > 2) args[2] else "bench/results/wasmtime-zig-native.json";

    const manifest_text = try dir.readFileAlloc(arena, "modules.json", manifest_bytes_max);
    const manifest = try std.json.parseFromSliceLeaky([]const ManifestEntry, arena, manifest_text, .{});
    if (manifest.len == 0 or manifest.len > modules_max) {
        std.debug.print("wasmtime_bench: modules.json lists {d} modules, not 1..{d}\n", .{ manifest.len, modules_max });
        std.process.exit(1);
    }
    const bytes = try arena.alloc([]const u8, manifest.len);
    for (manifest, bytes) |entry, *b| b.* = try dir.readFileAlloc(arena, entry.file, module_bytes_max);

    var stdout_buffer: [4096]u8 = undefined;
    var stdout_writer = std.fs.File.stdout().writer(&stdout_buffer);
    const out = &stdout_writer.interface;
    try out.print("Wasmtime as the peer, Zig-native (no FFI), ReleaseFast, median of {d} rounds\n", .{rounds});
    try out.print("{s:<16} {s:<26} {s:>10} {s:>12} {s:>12} {s:>12}\n", .{ "module", "engine", "iterations", "median ns", "min ns", "max ns" });
    try out.flush();

    var rows: std.ArrayList(Row) = .empty;
    for (engine_cases) |case| {
        const engine = engine_create(case);
        defer wasm_engine_delete(engine);
        for (manifest, bytes) |entry, module_bytes| {
            const pre = instance_pre_create(engine, module_bytes);
            defer wasmtime_instance_pre_delete(pre);
            const row = measure(case, engine, pre, entry.group);
            try rows.append(arena, row);
            try out.print("{s:<16} {s:<26} {d:>10} {d:>12.1} {d:>12.1} {d:>12.1}\n", .{ entry.name, case.name, row.iterations, row.median_ns, row.min_ns, row.max_ns });
            try out.flush();
        }
    }

    const text = try std.json.Stringify.valueAlloc(arena, .{
        .runtime = "zig-native",
        .benchmarks = rows.items,
    }, .{});
    try out.print("{s}\n", .{text});
    if (std.fs.path.dirname(out_path)) |parent| try std.fs.cwd().makePath(parent);
    const file = try std.fs.cwd().createFile(out_path, .{});
    defer file.close();
    try file.writeAll(text);
    try file.writeAll("\n");
    try out.print("wrote {s}\n", .{out_path});
    try out.flush();
}
