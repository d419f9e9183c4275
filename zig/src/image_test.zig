//! Images through the engine, mprotect mode: a slot maps its module's image copy-on-write,
//! keeps it for the next tenant of the same module (module affinity), remaps it for another
//! module, drops it when the module goes; failures leave the slot restored or quarantined.

const std = @import("std");
const testing = std.testing;
const engine_mod = @import("engine.zig");
const Engine = engine_mod.Engine;
const module_mod = @import("module.zig");
const Scratch = @import("scratch.zig").Scratch;
const sys = @import("sys.zig");

const page = 65536;

/// A blob with one memory of `min..max` pages and one data segment of `fill` bytes (each
/// `byte`) at `offset`.
fn blob(min: u32, max: u32, offset: u32, fill: u32, byte: u8, out: []align(8) u8) []align(8) u8 {
    const header_bytes = @sizeOf(module_mod.Header) + 8 + 24;
    const len = header_bytes + fill;
    std.debug.assert(len <= out.len);
    @memset(out[0..len], 0);
    const header: *module_mod.Header = @ptrCast(out.ptr);
    header.magic = module_mod.magic;
    header.version = module_mod.version;
    header.blob_bytes = @intCast(len);
    header.defined_memories = 1;
    header.data_segments = 1;
    const words: [*]u32 = @ptrCast(out.ptr);
    words[16] = min;
    words[17] = max;
    words[18..][0..6].* = .{ 0, 0, offset, header_bytes, fill, 0 };
    @memset(out[header_bytes..len], byte);
    return out[0..len];
}

fn engine(count: u32, keep_resident_bytes: u64) *Engine {
    return engine_warm(count, keep_resident_bytes, count);
}

fn engine_warm(count: u32, keep_resident_bytes: u64, max_unused_warm_slots: u32) *Engine {
    var c = std.mem.zeroes(engine_mod.Config);
    c.strategy = @intFromEnum(engine_mod.Strategy.pooling);
    c.instance_count = count;
    c.memories = 1;
    c.memory_pages = 8;
    c.memory_reservation_bytes = 16 * page;
    c.memory_keep_resident_bytes = keep_resident_bytes;
    c.max_unused_warm_slots = max_unused_warm_slots;
    return Engine.create(std.heap.c_allocator, &c).?;
}

fn base_of(buffer: []const u8) [*]u8 {
    return @ptrFromInt(@as(usize, @intCast(std.mem.readInt(u64, buffer[32..40], .little))));
}

/// Lines of /proc/self/maps that map a module image's memfd.
fn image_mappings() !usize {
    const file = try std.fs.openFileAbsolute("/proc/self/maps", .{});
    defer file.close();
    const text = try file.readToEndAlloc(testing.allocator, 64 << 20);
    defer testing.allocator.free(text);
    var count: usize = 0;
    var lines = std.mem.splitScalar(u8, text, '\n');
    while (lines.next()) |line| {
        if (std.mem.indexOf(u8, line, "memfd:wasmpool-image") != null) count += 1;
    }
    return count;
}

test "a slot keeps its module's image for the next tenant, remaps for another module" {
    const e = engine(1, page);
    defer e.release();
    var a_bytes: [256]u8 align(8) = undefined;
    var b_bytes: [256]u8 align(8) = undefined;
    const a = try e.module_create(blob(2, 4, 100, 64, 0xaa, &a_bytes));
    const b = try e.module_create(blob(1, 4, 7, 64, 0xbb, &b_bytes));
    try testing.expect(a.imaged and b.imaged);
    var buffer: [64]u8 align(8) = undefined;
    const scratch = Scratch{ .bytes = &buffer };

    for (0..3) |round| {
        try testing.expectEqual(@as(i32, 0), e.allocate(a, scratch));
        const base = base_of(&buffer);
        try testing.expectEqual(@as(u8, 0xaa), base[100]);
        try testing.expectEqual(@as(u8, 0), base[99]);
        try testing.expectEqual(@as(u8, 0), base[164]);
        base[100] = 1; // the image page (keep-resident: restored by copy)
        base[page + 5] = 2; // past the keep-resident bytes: dropped
        try testing.expectEqual(engine_mod.Code.ok, e.dispose(0));
        if (round == 0) try testing.expectEqual(@as(u64, 1), e.stats().image_remaps);
    }
    var stats = e.stats();
    try testing.expectEqual(@as(u64, 2), stats.affine_hits);
    try testing.expectEqual(@as(u64, 1), stats.image_remaps);
    try testing.expectEqual(@as(u64, 0), stats.image_bytes_shared);

    // Module b on the same slot: a's image gives way, nothing of a or its tenant shows.
    try testing.expectEqual(@as(i32, 0), e.allocate(b, scratch));
    const base = base_of(&buffer);
    try testing.expectEqual(@as(u8, 0xbb), base[7]);
    try testing.expectEqual(@as(u8, 0), base[100 + 64]);
    try testing.expectEqual(@as(u8, 0xbb), base[70]);
    try testing.expectEqual(@as(u8, 0), base[71]);
    for (base[71..page]) |byte| try testing.expectEqual(@as(u8, 0), byte);
    stats = e.stats();
    try testing.expectEqual(@as(u64, 2), stats.image_remaps);
    try testing.expectEqual(@as(u64, page), stats.image_bytes_shared);
    try testing.expectEqual(engine_mod.Code.ok, e.dispose(0));

    // Back to a: its image again (a remap), the grown bytes of the earlier tenants gone.
    try testing.expectEqual(@as(i32, 0), e.allocate(a, scratch));
    try testing.expectEqual(@as(u8, 0xaa), base[100]);
    try testing.expectEqual(@as(u8, 0), base[7]);
    try testing.expectEqual(@as(u8, 0), base[page + 5]);
    try testing.expectEqual(engine_mod.Code.ok, e.dispose(0));
    try testing.expectEqual(@as(u64, 3), e.stats().image_remaps);
}

test "copy-on-write: a write through one instance is not seen by another of the same module" {
    const e = engine(2, 0);
    defer e.release();
    var bytes: [256]u8 align(8) = undefined;
    const m = try e.module_create(blob(1, 1, 0, 128, 0x11, &bytes));
    var buffer_a: [64]u8 align(8) = undefined;
    var buffer_b: [64]u8 align(8) = undefined;
    const a = e.allocate(m, .{ .bytes = &buffer_a });
    const b = e.allocate(m, .{ .bytes = &buffer_b });
    try testing.expect(a >= 0 and b >= 0);
    base_of(&buffer_a)[5] = 0x99;
    try testing.expectEqual(@as(u8, 0x11), base_of(&buffer_b)[5]);
    try testing.expectEqual(@as(u8, 0x11), m.images[0].?.view[5]);
    try testing.expectEqual(@as(u64, 2 * page), e.stats().image_bytes_shared);
    try testing.expectEqual(engine_mod.Code.ok, e.dispose(@intCast(a)));
    try testing.expectEqual(engine_mod.Code.ok, e.dispose(@intCast(b)));
}

test "destroying a module unmaps its image from every free slot" {
    const before = try image_mappings();
    {
        const e = engine(3, page);
        defer e.release();
        var bytes: [256]u8 align(8) = undefined;
        const m = try e.module_create(blob(1, 2, 0, 64, 0x22, &bytes));
        var buffers: [3][64]u8 align(8) = undefined;
        var ids: [3]i32 = undefined;
        for (&ids, &buffers) |*id, *buf| id.* = e.allocate(m, .{ .bytes = buf });
        // Three slots plus the view.
        try testing.expectEqual(before + 4, try image_mappings());
        for (ids) |id| try testing.expectEqual(engine_mod.Code.ok, e.dispose(@intCast(id)));
        try testing.expectEqual(before + 4, try image_mappings());
        try testing.expectEqual(engine_mod.Code.ok, e.module_destroy(m));
        try testing.expectEqual(before, try image_mappings());
        // The slots serve a module without an image as zeros.
        var zero_bytes: [256]u8 align(8) = undefined;
        const z = try e.module_create(blob(1, 2, 0, 0, 0, &zero_bytes));
        try testing.expect(z.imaged and z.images[0] == null);
        const id = e.allocate(z, .{ .bytes = &buffers[0] });
        try testing.expectEqual(@as(u8, 0), base_of(&buffers[0])[0]);
        try testing.expectEqual(engine_mod.Code.ok, e.dispose(@intCast(id)));
    }
    try testing.expectEqual(before, try image_mappings());
}

test "an injected failure of the mmap over the slot: resource error, slot restored, then quarantined" {
    // No slot kept warm for a module: b is given a's slot, so it must remap it.
    const e = engine_warm(2, page, 0);
    defer e.release();
    var a_bytes: [256]u8 align(8) = undefined;
    var b_bytes: [256]u8 align(8) = undefined;
    const a = try e.module_create(blob(1, 2, 0, 64, 0xaa, &a_bytes));
    const b = try e.module_create(blob(1, 2, 0, 32, 0xbb, &b_bytes));
    var buffer: [64]u8 align(8) = undefined;
    const scratch = Scratch{ .bytes = &buffer };
    try testing.expectEqual(@as(i32, 0), e.allocate(a, scratch));
    try testing.expectEqual(engine_mod.Code.ok, e.dispose(0));

    // One failure: the remap fails, restoring the reservation succeeds.
    sys.inject_failures(.map_fixed, 1);
    try testing.expectEqual(@intFromEnum(engine_mod.Code.resource), e.allocate(b, scratch));
    const detail = scratch.detail();
    try testing.expectEqual(@as(u32, @intFromEnum(std.os.linux.E.NOMEM)), detail[0]);
    try testing.expectEqual(@as(u32, 1), detail[2]); // mapping b's image
    try testing.expectEqual(@as(u32, 0), detail[7]); // restored, not quarantined
    try testing.expectEqual(@as(u64, 0), e.stats().quarantined_slots);
    try testing.expectEqual(@as(i32, 0), e.allocate(b, scratch));
    const base = base_of(&buffer);
    try testing.expectEqual(@as(u8, 0xbb), base[31]);
    try testing.expectEqual(@as(u8, 0), base[32]);
    try testing.expectEqual(engine_mod.Code.ok, e.dispose(0));

    // Two failures: the remap and the restore: the slot is quarantined, never handed out again.
    sys.inject_failures(.map_fixed, 2);
    try testing.expectEqual(@intFromEnum(engine_mod.Code.resource), e.allocate(a, scratch));
    try testing.expectEqual(@as(u32, 1), scratch.detail()[7]);
    const stats = e.stats();
    try testing.expectEqual(@as(u64, 1), stats.quarantined_slots);
    try testing.expectEqual(@intFromEnum(engine_mod.QuarantineOperation.mmap), stats.quarantine_operation);
    try testing.expectEqual(@as(u64, 0), stats.live_instances);
    try testing.expectEqual(@as(i32, 1), e.allocate(a, scratch));
    try testing.expectEqual(@as(u8, 0xaa), base_of(&buffer)[63]);
    try testing.expectEqual(@intFromEnum(engine_mod.Code.pool_full), e.allocate(a, scratch));
    try testing.expectEqual(engine_mod.Code.ok, e.dispose(1));
}

test "an injected madvise failure: the slot is restored; with the restore failing, quarantined" {
    const e = engine(2, 0);
    defer e.release();
    var bytes: [256]u8 align(8) = undefined;
    const m = try e.module_create(blob(2, 2, 0, 64, 0xcc, &bytes));
    var buffer: [64]u8 align(8) = undefined;
    const scratch = Scratch{ .bytes = &buffer };
    try testing.expectEqual(@as(i32, 0), e.allocate(m, scratch));
    base_of(&buffer)[3] = 7;
    sys.inject_failures(.decommit, 1);
    try testing.expectEqual(engine_mod.Code.ok, e.dispose(0));
    try testing.expectEqual(@as(u64, 0), e.stats().quarantined_slots);
    try testing.expectEqual(@as(i32, 0), e.allocate(m, scratch));
    try testing.expectEqual(@as(u8, 0xcc), base_of(&buffer)[3]);
    base_of(&buffer)[3] = 7;
    sys.inject_failures(.decommit, 1);
    sys.inject_failures(.map_fixed, 1);
    try testing.expectEqual(engine_mod.Code.quarantined, e.dispose(0));
    const stats = e.stats();
    try testing.expectEqual(@as(u64, 1), stats.quarantined_slots);
    // The cause named is the first failure: the reset's madvise.
    try testing.expectEqual(@intFromEnum(engine_mod.QuarantineOperation.madvise), stats.quarantine_operation);
    try testing.expectEqual(@as(i32, 1), e.allocate(m, scratch));
    try testing.expectEqual(@as(u8, 0xcc), base_of(&buffer)[3]);
    try testing.expectEqual(engine_mod.Code.ok, e.dispose(1));
}

test "an injected memfd_create failure refuses the module with its step" {
    const e = engine(1, 0);
    defer e.release();
    var bytes: [256]u8 align(8) = undefined;
    var failure: @import("image.zig").Failure = undefined;
    sys.inject_failures(.memfd_create, 1);
    try testing.expectError(error.ImageFailed, e.module_create_with(blob(1, 1, 0, 8, 1, &bytes), &failure));
    try testing.expectEqual(@import("image.zig").Step.memfd_create, failure.step);
    try testing.expectEqual(@as(u64, 0), e.stats().modules);
}

test "on demand: the image is mapped copy-on-write into each instance's own reservation" {
    var c = std.mem.zeroes(engine_mod.Config);
    c.strategy = @intFromEnum(engine_mod.Strategy.on_demand);
    c.memories = 1;
    c.memory_pages = 8;
    c.memory_reservation_bytes = 16 * page;
    const e = Engine.create(std.heap.c_allocator, &c).?;
    defer e.release();
    var bytes: [256]u8 align(8) = undefined;
    const m = try e.module_create(blob(2, 4, page - 3, 6, 0xdd, &bytes));
    var buffer_a: [64]u8 align(8) = undefined;
    var buffer_b: [64]u8 align(8) = undefined;
    const a = e.allocate(m, .{ .bytes = &buffer_a });
    const b = e.allocate(m, .{ .bytes = &buffer_b });
    try testing.expectEqual(@as(u8, 0xdd), base_of(&buffer_a)[page + 2]);
    base_of(&buffer_a)[page + 2] = 0;
    try testing.expectEqual(@as(u8, 0xdd), base_of(&buffer_b)[page + 2]);
    try testing.expectEqual(@as(u8, 0), base_of(&buffer_b)[page + 3]);
    try testing.expectEqual(@as(u64, 4 * page), e.stats().image_bytes_shared);
    try testing.expectEqual(engine_mod.Code.ok, e.dispose(@intCast(a)));
    try testing.expectEqual(engine_mod.Code.ok, e.dispose(@intCast(b)));
    try testing.expectEqual(@as(u64, 0), e.stats().image_bytes_shared);
}
