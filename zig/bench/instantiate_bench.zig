//! The Zig-native floor: instantiate + dispose of the small module that
//! bench/instantiate_bench.ts measures (1 memory page, max 1, a 1 KiB data segment of 0x07 at
//! offset 0, a 10-entry table with one element segment of one entry), straight through
//! `Engine.allocate` / `Engine.dispose`, with no FFI in between. Pooling in mprotect and
//! uffd mode, and on-demand. Prints a table and one JSON line, and writes the JSON to the path
//! given as the first argument (default `bench/results/zig-native.json`, relative to the cwd;
//! `zig build bench` runs this with the cwd at the repository root).

const std = @import("std");
const wasmpool = @import("wasmpool");
const Engine = wasmpool.Engine;
const Config = wasmpool.Config;

// The blob types, reached through the engine's public API (module.zig is not a separate
// module here): `Engine.module_create` returns `*Module`, whose fields name the rest.
const Module = @typeInfo(@typeInfo(@typeInfo(@TypeOf(Engine.module_create)).@"fn".return_type.?).error_union.payload).pointer.child;
const Header = std.meta.Child(@FieldType(Module, "header"));
const MemoryDesc = std.meta.Elem(@FieldType(Module, "memories"));
const TableDesc = std.meta.Elem(@FieldType(Module, "tables"));
const DataDesc = std.meta.Elem(@FieldType(Module, "data"));
const ElemDesc = std.meta.Elem(@FieldType(Module, "elems"));
/// `Scratch`, the type `Engine.allocate` takes.
const Scratch = @typeInfo(@TypeOf(Engine.allocate)).@"fn".params[2].type.?;

/// module.zig's `magic` ("WPMB") and `version`; a mismatch makes module_create fail loudly.
const blob_magic: u32 = 0x424d5057;
const blob_version: u32 = 1;

const data_bytes = 1024;
const table_elements = 10;

/// The blob bytes: Header, MemoryDesc, TableDesc, DataDesc, ElemDesc, then the payload
/// (one u32 element entry, then the 1 KiB of data).
const blob_len = @sizeOf(Header) + @sizeOf(MemoryDesc) + @sizeOf(TableDesc) + @sizeOf(DataDesc) +
    @sizeOf(ElemDesc) + 4 + data_bytes;

fn build_blob(bytes: *align(8) [blob_len]u8) void {
    @memset(bytes, 0);
    var at: usize = 0;
    const put = struct {
        fn put(dst: []u8, cursor: *usize, value: anytype) void {
            const src = std.mem.asBytes(&value);
            @memcpy(dst[cursor.*..][0..src.len], src);
            cursor.* += src.len;
        }
    }.put;
    var header = std.mem.zeroes(Header);
    header.magic = blob_magic;
    header.version = blob_version;
    header.blob_bytes = blob_len;
    header.defined_memories = 1;
    header.defined_tables = 1;
    header.data_segments = 1;
    header.elem_segments = 1;
    put(bytes, &at, header);
    put(bytes, &at, MemoryDesc{ .min_pages = 1, .max_pages = 1 });
    put(bytes, &at, TableDesc{ .min_elements = table_elements, .max_elements = table_elements });
    const payload: u32 = @intCast(at + @sizeOf(DataDesc) + @sizeOf(ElemDesc));
    var data = std.mem.zeroes(DataDesc);
    data.memory_index = 0;
    data.offset_kind = .constant;
    data.offset_value = 0;
    data.bytes_offset = payload + 4;
    data.bytes_len = data_bytes;
    put(bytes, &at, data);
    var elem = std.mem.zeroes(ElemDesc);
    elem.table_index = 0;
    elem.offset_kind = .constant;
    elem.offset_value = 0;
    elem.entries_offset = payload;
    elem.entries_count = 1;
    put(bytes, &at, elem);
    std.debug.assert(at == payload and payload % 4 == 0);
    put(bytes, &at, @as(u32, 0)); // function index 0
    @memset(bytes[at..][0..data_bytes], 0x07);
    at += data_bytes;
    std.debug.assert(at == blob_len);
}

const Mode = enum { mprotect, uffd, on_demand };

const Case = struct {
    name: []const u8,
    mode: Mode,
    iterations: u32,
};

const cases = [_]Case{
    .{ .name = "pooling (mprotect)", .mode = .mprotect, .iterations = 200_000 },
    .{ .name = "pooling (uffd)", .mode = .uffd, .iterations = 200_000 },
    .{ .name = "on-demand", .mode = .on_demand, .iterations = 20_000 },
};

const rounds = 7;

/// What the TypeScript side sends (src/engine.ts, encodeConfig) for
/// `pooling({ instanceLimits: { count: 100 } })` (and `uffd: true`), or for `new Engine()`.
fn config_for(mode: Mode) Config {
    var c = std.mem.zeroes(Config);
    switch (mode) {
        .mprotect, .uffd => {
            c.strategy = @intFromEnum(wasmpool.Strategy.pooling);
            c.index_strategy = 0; // next-available
            c.seed = 1;
            c.instance_count = 100;
            c.memories = 1;
            c.tables = 1;
            c.memory_pages = 160;
            c.table_elements = 10000;
            c.uffd = @intFromBool(mode == .uffd);
        },
        .on_demand => {
            c.strategy = @intFromEnum(wasmpool.Strategy.on_demand);
            c.memories = std.math.maxInt(u32);
            c.tables = std.math.maxInt(u32);
            c.memory_pages = 65536;
            c.table_elements = 10_000_000; // src/engine.ts's ON_DEMAND_TABLE_ELEMENTS order
        },
    }
    c.memory_reservation_bytes = 6 << 30;
    // The TypeScript defaults of `memoryKeepResident` and `maxUnusedWarmSlots` (src/config.ts);
    // the engine ignores them on demand.
    if (@hasField(Config, "memory_keep_resident_bytes") and mode != .on_demand) {
        c.memory_keep_resident_bytes = 65536;
    }
    if (@hasField(Config, "max_unused_warm_slots") and mode != .on_demand) {
        c.max_unused_warm_slots = 100;
    }
    return c;
}

const Result = struct {
    name: []const u8,
    /// Median over the rounds of the per-cycle time; null when the case was skipped.
    median_ns: ?f64,
    min_ns: f64 = 0,
    max_ns: f64 = 0,
    note: []const u8 = "",
};

/// `Engine.release` where engines are reference-counted (the last holder destroys it), else
/// `Engine.destroy`.
fn close_engine(engine: *Engine) void {
    if (comptime @hasDecl(Engine, "release")) engine.release() else engine.destroy();
}

fn cycle(engine: *Engine, module: *Module, scratch: Scratch) void {
    const id = engine.allocate(module, scratch);
    if (id < 0) std.debug.panic("instantiate failed with code {d}", .{id});
    const code = engine.dispose(@intCast(id));
    if (code != .ok) std.debug.panic("dispose failed with {s}", .{@tagName(code)});
}

fn run_case(case: Case, blob: []const u8) Result {
    var c = config_for(case.mode);
    const engine = Engine.create(std.heap.c_allocator, &c) orelse {
        if (case.mode == .uffd) {
            return .{ .name = case.name, .median_ns = null, .note = "skipped: engine creation failed (userfaultfd unavailable?)" };
        }
        std.debug.panic("engine creation failed for {s}: code {d}, errno {d}", .{ case.name, c.error_code, c.error_errno });
    };
    defer close_engine(engine);
    const module = engine.module_create(blob) catch |err| std.debug.panic("module_create: {s}", .{@errorName(err)});
    var buffer: [128]u8 align(8) = undefined;
    @memset(&buffer, 0);
    const scratch: Scratch = .{ .bytes = &buffer };

    // Warm up: fault in the slots, the allocator's free lists, the caches.
    for (0..case.iterations / 10) |_| cycle(engine, module, scratch);

    var per_cycle: [rounds]f64 = undefined;
    for (&per_cycle) |*ns| {
        var timer = std.time.Timer.start() catch @panic("no monotonic clock");
        for (0..case.iterations) |_| cycle(engine, module, scratch);
        const elapsed = timer.read();
        ns.* = @as(f64, @floatFromInt(elapsed)) / @as(f64, @floatFromInt(case.iterations));
    }
    std.mem.sort(f64, &per_cycle, {}, std.sort.asc(f64));
    _ = engine.module_destroy(module);
    return .{
        .name = case.name,
        .median_ns = per_cycle[rounds / 2],
        .min_ns = per_cycle[0],
        .max_ns = per_cycle[rounds - 1],
    };
}

pub fn main() !void {
    var arena_state = std.heap.ArenaAllocator.init(std.heap.page_allocator);
    defer arena_state.deinit();
    const arena = arena_state.allocator();
    const args = try std.process.argsAlloc(arena);
    const out_path = if (args.len > 1) args[1] else "bench/results/zig-native.json";

    var blob: [blob_len]u8 align(8) = undefined;
    build_blob(&blob);

    var stdout_buffer: [4096]u8 = undefined;
    var stdout_writer = std.fs.File.stdout().writer(&stdout_buffer);
    const out = &stdout_writer.interface;

    try out.print("instantiate+dispose, small module (1 page, 1 KiB data segment, 10-entry table), " ++
        "Zig-native, ReleaseFast, median of {d} rounds\n", .{rounds});
    try out.print("{s:<20} {s:>10} {s:>12} {s:>12} {s:>12}\n", .{ "benchmark", "iterations", "median ns", "min ns", "max ns" });
    try out.flush();

    var results: [cases.len]Result = undefined;
    for (cases, &results) |case, *result| {
        result.* = run_case(case, &blob);
        if (result.median_ns) |median| {
            try out.print("{s:<20} {d:>10} {d:>12.1} {d:>12.1} {d:>12.1}\n", .{ case.name, case.iterations, median, result.min_ns, result.max_ns });
        } else {
            try out.print("{s:<20} {s}\n", .{ case.name, result.note });
        }
        try out.flush();
    }

    var json: std.Io.Writer.Allocating = .init(arena);
    const j = &json.writer;
    try j.writeAll("{\"runtime\":\"zig-native\",\"benchmarks\":[");
    var first = true;
    for (results) |result| {
        if (!first) try j.writeAll(",");
        first = false;
        if (result.median_ns) |median| {
            try j.print("{{\"name\":\"{s}\",\"median_ns\":{d:.1},\"min_ns\":{d:.1},\"max_ns\":{d:.1}}}", .{ result.name, median, result.min_ns, result.max_ns });
        } else {
            try j.print("{{\"name\":\"{s}\",\"median_ns\":null,\"note\":\"{s}\"}}", .{ result.name, result.note });
        }
    }
    try j.writeAll("]}");
    const text = json.written();
    try out.print("{s}\n", .{text});
    try out.flush();

    if (std.fs.path.dirname(out_path)) |dir| try std.fs.cwd().makePath(dir);
    const file = try std.fs.cwd().createFile(out_path, .{});
    defer file.close();
    try file.writeAll(text);
    try file.writeAll("\n");
    try out.print("wrote {s}\n", .{out_path});
    try out.flush();
}
