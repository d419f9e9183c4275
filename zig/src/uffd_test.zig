//! userfaultfd mode through the engine: images served on first touch, zero pages, resets,
//! working-set prefetch, concurrent faults. Skipped where the kernel refuses userfaultfd.

const std = @import("std");
const testing = std.testing;
const engine_mod = @import("engine.zig");
const Engine = engine_mod.Engine;
const module_mod = @import("module.zig");
const Scratch = @import("scratch.zig").Scratch;

/// One memory of 4..8 pages; "hello" at 100 (page 0) and "world" at 2 pages + 7 (page 2).
fn blob() [256]u8 {
    var bytes = std.mem.zeroes([256]u8);
    const header: *module_mod.Header = @ptrCast(@alignCast(&bytes));
    header.magic = module_mod.magic;
    header.version = module_mod.version;
    header.blob_bytes = bytes.len;
    header.defined_memories = 1;
    header.data_segments = 2;
    const words: [*]u32 = @ptrCast(@alignCast(&bytes));
    words[16] = 4;
    words[17] = 8;
    words[18..][0..6].* = .{ 0, 0, 100, 200, 5, 0 };
    words[24..][0..6].* = .{ 0, 0, 2 * 65536 + 7, 205, 5, 0 };
    @memcpy(bytes[200..210], "helloworld");
    return bytes;
}

fn uffd_engine(count: u32) ?*Engine {
    var c = std.mem.zeroes(engine_mod.Config);
    c.strategy = @intFromEnum(engine_mod.Strategy.pooling);
    c.instance_count = count;
    c.memories = 1;
    c.memory_pages = 8;
    c.memory_reservation_bytes = 1 << 20;
    c.uffd = 1;
    const engine = Engine.create(std.heap.c_allocator, &c) orelse {
        std.debug.assert(c.error_code == @intFromEnum(engine_mod.Code.uffd_unavailable));
        return null;
    };
    return engine;
}

fn base_of(buffer: []const u8) [*]u8 {
    return @ptrFromInt(@as(usize, @intCast(std.mem.readInt(u64, buffer[32..40], .little))));
}

test "uffd: image on first touch, zero pages elsewhere, clean on reuse, then prefetched" {
    const engine = uffd_engine(1) orelse return error.SkipZigTest;
    defer engine.release();
    const bytes = blob();
    const module = try engine.module_create(&bytes);
    try testing.expect(module.imaged);
    // Two host pages of data ("hello" and "world"); the image covers 3 wasm pages.
    try testing.expectEqual(@as(u64, 2 * std.heap.page_size_min), module.images[0].?.data_bytes);
    try testing.expectEqual(@as(u64, 3 * 65536), module.images[0].?.size_bytes);
    var buffer: [64]u8 align(8) = undefined;
    const scratch = Scratch{ .bytes = &buffer };

    for (0..3) |_| {
        const id = engine.allocate(module, scratch);
        try testing.expectEqual(@as(i32, 0), id);
        const base = base_of(&buffer);
        try testing.expectEqualStrings("hello", base[100..105]);
        try testing.expectEqualStrings("world", base[2 * 65536 + 7 ..][0..5]);
        try testing.expectEqual(@as(u8, 0), base[65536 + 3]);
        base[3 * 65536 + 1] = 0xaa; // a zero page, written
        base[101] = 'a'; // the image page, written: the module's image must not change
        try testing.expectEqual(@as(i32, 4), engine.memory_grow(0, 0, 1, scratch) + 0 * id);
        base[4 * 65536] = 1;
        try testing.expectEqual(engine_mod.Code.ok, engine.dispose(0));
    }
    const stats = engine.stats();
    // The first tenant faulted pages 0 and 2 (image) and 1, 3, 4 (zeros); the next two got
    // the host page each touched prefetched, at instantiation and at grow: no fault reached
    // the handler.
    try testing.expectEqual(@as(u64, 2), stats.uffd_pages_copied);
    try testing.expectEqual(@as(u64, 3), stats.uffd_pages_zeroed);
    try testing.expectEqual(@as(u64, 0), stats.uffd_guard_faults);
    try testing.expectEqual(@as(u64, 2 * 5 * std.heap.page_size_min), stats.uffd_prefetched_bytes);
}

test "uffd: two threads faulting on the same page at once both see the image" {
    const engine = uffd_engine(1) orelse return error.SkipZigTest;
    defer engine.release();
    const bytes = blob();
    const module = try engine.module_create(&bytes);
    var buffer: [64]u8 align(8) = undefined;
    const scratch = Scratch{ .bytes = &buffer };
    for (0..50) |_| {
        try testing.expectEqual(@as(i32, 0), engine.allocate(module, scratch));
        const base = base_of(&buffer);
        const Reader = struct {
            fn run(b: [*]u8, out: *[5]u8) void {
                @memcpy(out, b[2 * 65536 + 7 ..][0..5]);
            }
        };
        var results: [2][5]u8 = undefined;
        const a = try std.Thread.spawn(.{}, Reader.run, .{ base, &results[0] });
        const b = try std.Thread.spawn(.{}, Reader.run, .{ base, &results[1] });
        a.join();
        b.join();
        try testing.expectEqualStrings("world", &results[0]);
        try testing.expectEqualStrings("world", &results[1]);
        try testing.expectEqual(engine_mod.Code.ok, engine.dispose(0));
    }
}

test "uffd is refused for on-demand engines" {
    var c = std.mem.zeroes(engine_mod.Config);
    c.strategy = @intFromEnum(engine_mod.Strategy.on_demand);
    c.uffd = 1;
    c.memory_reservation_bytes = 1 << 20;
    try testing.expect(Engine.create(std.heap.c_allocator, &c) == null);
    try testing.expectEqual(@intFromEnum(engine_mod.Code.bad_config), c.error_code);
}

test "uffd: an image whose data pages and holes alternate within a wasm page" {
    const engine = uffd_engine(1) orelse return error.SkipZigTest;
    defer engine.release();
    var bytes = std.mem.zeroes([256]u8);
    const header: *module_mod.Header = @ptrCast(@alignCast(&bytes));
    header.magic = module_mod.magic;
    header.version = module_mod.version;
    header.blob_bytes = bytes.len;
    header.defined_memories = 1;
    header.data_segments = 2;
    const words: [*]u32 = @ptrCast(@alignCast(&bytes));
    words[16] = 2;
    words[17] = 2;
    words[18..][0..6].* = .{ 0, 0, 65530, 200, 30, 0 };
    words[24..][0..6].* = .{ 0, 0, 10, 200, 11, 0 };
    @memset(bytes[200..230], 'x');
    const module = try engine.module_create(&bytes);
    var buffer: [64]u8 align(8) = undefined;
    const scratch = Scratch{ .bytes = &buffer };
    try testing.expectEqual(@as(i32, 0), engine.allocate(module, scratch));
    const base = base_of(&buffer);
    try testing.expectEqual(@as(u8, 'x'), base[65530]);
    try testing.expectEqual(@as(u8, 'x'), base[65559]);
    try testing.expectEqual(@as(u8, 'x'), base[10]);
    try testing.expectEqual(@as(u8, 0), base[5000]);
    try testing.expectEqual(engine_mod.Code.ok, engine.dispose(0));
}

test "uffd keep-resident: kept pages restored to the image, dropped when another module comes" {
    var c = std.mem.zeroes(engine_mod.Config);
    c.strategy = @intFromEnum(engine_mod.Strategy.pooling);
    c.instance_count = 1;
    c.memories = 1;
    c.memory_pages = 8;
    c.memory_reservation_bytes = 1 << 20;
    c.uffd = 1;
    c.memory_keep_resident_bytes = 3 * 65536;
    const engine = Engine.create(std.heap.c_allocator, &c) orelse return error.SkipZigTest;
    defer engine.release();
    const bytes = blob();
    const module = try engine.module_create(&bytes);
    var other_bytes: [256]u8 align(8) = std.mem.zeroes([256]u8);
    {
        const header: *module_mod.Header = @ptrCast(@alignCast(&other_bytes));
        header.magic = module_mod.magic;
        header.version = module_mod.version;
        header.blob_bytes = other_bytes.len;
        header.defined_memories = 1;
        header.data_segments = 1;
        const words: [*]u32 = @ptrCast(@alignCast(&other_bytes));
        words[16] = 4;
        words[17] = 8;
        words[18..][0..6].* = .{ 0, 0, 98, 200, 4, 0 };
        @memcpy(other_bytes[200..204], "XYZW");
    }
    const other = try engine.module_create(&other_bytes);
    var buffer: [64]u8 align(8) = undefined;
    const scratch = Scratch{ .bytes = &buffer };
    for (0..4) |_| {
        try testing.expectEqual(@as(i32, 0), engine.allocate(module, scratch));
        const base = base_of(&buffer);
        try testing.expectEqualStrings("hello", base[100..105]);
        try testing.expectEqualStrings("world", base[2 * 65536 + 7 ..][0..5]);
        try testing.expectEqual(@as(u8, 0), base[65536 + 3]);
        try testing.expectEqual(@as(u8, 0), base[98]);
        base[100] = 'j'; // kept: restored by copy
        base[65536 + 3] = 1; // a kept zero page, written
        base[3 * 65536 + 5] = 2; // past the kept bytes: dropped
        try testing.expectEqual(engine_mod.Code.ok, engine.dispose(0));
    }
    try testing.expectEqual(@as(i32, 0), engine.allocate(other, scratch));
    const base = base_of(&buffer);
    try testing.expectEqualStrings("XYZW", base[98..102]);
    try testing.expectEqual(@as(u8, 0), base[102]);
    try testing.expectEqual(@as(u8, 0), base[65536 + 3]);
    try testing.expectEqual(@as(u8, 0), base[2 * 65536 + 7]);
    try testing.expectEqual(@as(u8, 0), base[3 * 65536 + 5]);
    try testing.expectEqual(engine_mod.Code.ok, engine.dispose(0));
    const stats = engine.stats();
    try testing.expectEqual(@as(u64, 3), stats.affine_hits);
    try testing.expectEqual(@as(u64, 2), stats.image_remaps);
}

/// A blob with one memory of `min..max` pages and, if `len` > 0, one segment of `len` bytes of
/// `byte` at `offset`.
fn blob_of(out: *align(8) [256]u8, min: u32, max: u32, offset: u32, len: u32, byte: u8) []align(8) u8 {
    out.* = std.mem.zeroes([256]u8);
    const header: *module_mod.Header = @ptrCast(out);
    header.magic = module_mod.magic;
    header.version = module_mod.version;
    header.blob_bytes = out.len;
    header.defined_memories = 1;
    header.data_segments = @intFromBool(len > 0);
    const words: [*]u32 = @ptrCast(out);
    words[16] = min;
    words[17] = max;
    words[18..][0..6].* = .{ 0, 0, offset, 200, len, 0 };
    @memset(out[200..][0..len], byte);
    return out;
}

test "uffd keep-resident: no kept page outlives a smaller tenant, nor hides a new image" {
    var c = std.mem.zeroes(engine_mod.Config);
    c.strategy = @intFromEnum(engine_mod.Strategy.pooling);
    c.instance_count = 1;
    c.memories = 1;
    c.memory_pages = 8;
    c.memory_reservation_bytes = 1 << 20;
    c.uffd = 1;
    c.memory_keep_resident_bytes = 65536;
    const engine = Engine.create(std.heap.c_allocator, &c) orelse return error.SkipZigTest;
    defer engine.release();
    var zeros_bytes: [256]u8 align(8) = undefined;
    var empty_bytes: [256]u8 align(8) = undefined;
    var data_bytes: [256]u8 align(8) = undefined;
    const zeros = try engine.module_create(blob_of(&zeros_bytes, 1, 1, 0, 0, 0));
    const empty = try engine.module_create(blob_of(&empty_bytes, 0, 1, 0, 0, 0));
    const data = try engine.module_create(blob_of(&data_bytes, 1, 1, 54142, 17, 0x40));
    var buffer: [64]u8 align(8) = undefined;
    const scratch = Scratch{ .bytes = &buffer };
    const pagemap = @import("resident.zig").open_pagemap() orelse return error.SkipZigTest;
    defer @import("resident.zig").close_pagemap(pagemap);

    // A tenant without an image writes page 0: its reset keeps it, as zeros.
    try testing.expectEqual(@as(i32, 0), engine.allocate(zeros, scratch));
    const base = base_of(&buffer);
    @memset(base[0..65536], 0x11);
    try testing.expectEqual(engine_mod.Code.ok, engine.dispose(0));
    // A tenant of size 0 (the same image: none): no page may be present in its memory.
    try testing.expectEqual(@as(i32, 0), engine.allocate(empty, scratch));
    var entries: [16]u64 = undefined;
    @import("resident.zig").read_entries(pagemap, base, &entries);
    for (entries) |entry| try testing.expectEqual(@import("resident.zig").Page.absent, @import("resident.zig").classify(entry));
    try testing.expectEqual(engine_mod.Code.ok, engine.dispose(0));
    // A module with an image then sees it, not the zeros kept earlier.
    try testing.expectEqual(@as(i32, 0), engine.allocate(data, scratch));
    try testing.expectEqual(@as(u8, 0x40), base[54142]);
    try testing.expectEqual(@as(u8, 0), base[54142 + 17]);
    try testing.expectEqual(engine_mod.Code.ok, engine.dispose(0));
}

test "uffd: an injected madvise failure when the slot changes module: resource error, then restored" {
    var c = std.mem.zeroes(engine_mod.Config);
    c.strategy = @intFromEnum(engine_mod.Strategy.pooling);
    c.instance_count = 1;
    c.memories = 1;
    c.memory_pages = 8;
    c.memory_reservation_bytes = 1 << 20;
    c.uffd = 1;
    c.memory_keep_resident_bytes = 65536;
    const engine = Engine.create(std.heap.c_allocator, &c) orelse return error.SkipZigTest;
    defer engine.release();
    var a_bytes: [256]u8 align(8) = undefined;
    var b_bytes: [256]u8 align(8) = undefined;
    const a = try engine.module_create(blob_of(&a_bytes, 1, 1, 0, 32, 0xaa));
    const b = try engine.module_create(blob_of(&b_bytes, 1, 1, 32, 8, 0xbb));
    var buffer: [64]u8 align(8) = undefined;
    const scratch = Scratch{ .bytes = &buffer };
    try testing.expectEqual(@as(i32, 0), engine.allocate(a, scratch));
    const base = base_of(&buffer);
    try testing.expectEqual(@as(u8, 0xaa), base[0]);
    base[100] = 0xee;
    try testing.expectEqual(engine_mod.Code.ok, engine.dispose(0));
    @import("sys.zig").inject_failures(.decommit, 1);
    try testing.expectEqual(@intFromEnum(engine_mod.Code.resource), engine.allocate(b, scratch));
    try testing.expectEqual(@as(u32, 3), scratch.detail()[2]); // the madvise of a's kept pages
    try testing.expectEqual(@as(u32, 0), scratch.detail()[7]); // restored
    try testing.expectEqual(@as(i32, 0), engine.allocate(b, scratch));
    try testing.expectEqual(@as(u8, 0), base[0]);
    try testing.expectEqual(@as(u8, 0xbb), base[32]);
    try testing.expectEqual(@as(u8, 0), base[100]);
    try testing.expectEqual(engine_mod.Code.ok, engine.dispose(0));
    try testing.expectEqual(@as(u64, 0), engine.stats().quarantined_slots);
}

test "uffd: a module destroyed while its free slot's reset cannot be undone: quarantined, no crash" {
    var c = std.mem.zeroes(engine_mod.Config);
    c.strategy = @intFromEnum(engine_mod.Strategy.pooling);
    c.instance_count = 1;
    c.memories = 1;
    c.memory_pages = 8;
    c.memory_reservation_bytes = 1 << 20;
    c.uffd = 1;
    c.memory_keep_resident_bytes = 65536;
    const engine = Engine.create(std.heap.c_allocator, &c) orelse return error.SkipZigTest;
    defer engine.release();
    var a_bytes: [256]u8 align(8) = undefined;
    const a = try engine.module_create(blob_of(&a_bytes, 1, 1, 0, 32, 0xaa));
    var buffer: [64]u8 align(8) = undefined;
    const scratch = Scratch{ .bytes = &buffer };
    try testing.expectEqual(@as(i32, 0), engine.allocate(a, scratch));
    base_of(&buffer)[100] = 0xee;
    try testing.expectEqual(engine_mod.Code.ok, engine.dispose(0));
    // Both the prepare that would empty the slot and the drop that would follow it fail.
    @import("sys.zig").inject_failures(.decommit, 2);
    try testing.expectEqual(engine_mod.Code.ok, engine.module_destroy(a));
    try testing.expectEqual(@as(u64, 1), engine.stats().quarantined_slots);
}
