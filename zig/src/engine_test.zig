//! Whole-engine tests through the same entry points the C ABI uses.

const std = @import("std");
const testing = std.testing;
const engine_mod = @import("engine.zig");
const Engine = engine_mod.Engine;
const module_mod = @import("module.zig");
const Scratch = @import("scratch.zig").Scratch;

fn config(strategy: engine_mod.Strategy, count: u32) engine_mod.Config {
    var c = std.mem.zeroes(engine_mod.Config);
    c.strategy = @intFromEnum(strategy);
    c.instance_count = count;
    c.memories = 1;
    c.tables = 1;
    c.memory_pages = 4;
    c.table_elements = 100;
    c.memory_reservation_bytes = 1 << 20;
    return c;
}

/// A blob with one memory (1..4 pages), one table (2..10 elements), one data segment of
/// "hello" at 100 and one element segment [7 -> entry 8] at 1.
fn blob(data_offset: u32) [256]u8 {
    var bytes = std.mem.zeroes([256]u8);
    const header: *module_mod.Header = @ptrCast(@alignCast(&bytes));
    header.* = std.mem.zeroes(module_mod.Header);
    header.magic = module_mod.magic;
    header.version = module_mod.version;
    header.blob_bytes = bytes.len;
    header.defined_memories = 1;
    header.defined_tables = 1;
    header.data_segments = 1;
    header.elem_segments = 1;
    const words: [*]u32 = @ptrCast(@alignCast(&bytes));
    var w: usize = 16;
    words[w] = 1;
    words[w + 1] = 4;
    w += 2;
    words[w] = 2;
    words[w + 1] = 10;
    w += 2;
    const payload: u32 = 200;
    words[w..][0..6].* = .{ 0, 0, data_offset, payload + 4, 5, 0 };
    w += 6;
    words[w..][0..6].* = .{ 0, 0, 1, payload, 1, 0 };
    words[payload / 4] = 8;
    @memcpy(bytes[payload + 4 ..][0..5], "hello");
    return bytes;
}

fn scratch_for(buffer: []align(8) u8) Scratch {
    return .{ .bytes = buffer };
}

test "pooled allocate, reuse resets memory and tables, pool full" {
    var c = config(.pooling, 2);
    const engine = Engine.create(std.heap.c_allocator, &c).?;
    defer engine.release();
    const bytes = blob(100);
    const module = try engine.module_create(&bytes);
    var buffer: [128]u8 align(8) = undefined;
    const scratch = scratch_for(&buffer);

    const a = engine.allocate(module, scratch);
    try testing.expectEqual(@as(i32, 0), a);
    const base: [*]u8 = @ptrFromInt(@as(usize, @intCast(std.mem.readInt(u64, buffer[32..40], .little))));
    const entries: [*]u32 = @ptrFromInt(@as(usize, @intCast(std.mem.readInt(u64, buffer[40..48], .little))));
    try testing.expectEqualStrings("hello", base[100..105]);
    try testing.expectEqual(@as(u32, 8), entries[1]);
    base[1000] = 0xee;
    try testing.expectEqual(@as(i32, 0), engine.memory_grow(@intCast(a), 0, 2, scratch) - 1);
    base[3 * 65536 - 1] = 0xdd;

    try testing.expectEqual(@as(i32, 1), engine.allocate(module, scratch));
    try testing.expectEqual(@intFromEnum(engine_mod.Code.pool_full), engine.allocate(module, scratch));
    try testing.expectEqual(@as(u32, 2), buffer[0]);

    try testing.expectEqual(engine_mod.Code.ok, engine.dispose(@intCast(a)));
    try testing.expectEqual(engine_mod.Code.bad_instance, engine.dispose(@intCast(a)));
    try testing.expectEqual(a, engine.allocate(module, scratch));
    try testing.expectEqual(@as(u8, 0), base[1000]);
    try testing.expectEqual(@as(u32, 1), engine.find_memory(@intCast(a), 0).?.pages.load(.acquire));
    // The grown pages are PROT_NONE again for the new tenant.
    try testing.expectEqual(@as(u64, 65536), engine.find_memory(@intCast(a), 0).?.accessible_bytes);
    try testing.expectEqual(@as(u64, 3), engine.stats().instantiations);
}

test "a data segment out of bounds fails and leaves the slot clean" {
    var c = config(.pooling, 1);
    const engine = Engine.create(std.heap.c_allocator, &c).?;
    defer engine.release();
    var buffer: [128]u8 align(8) = undefined;
    const scratch = scratch_for(&buffer);
    const bad_bytes = blob(65534);
    const bad = try engine.module_create(&bad_bytes);
    try testing.expectEqual(@intFromEnum(engine_mod.Code.data_out_of_bounds), engine.allocate(bad, scratch));
    try testing.expectEqual(@as(u32, 65534), std.mem.bytesAsSlice(u32, buffer[0..32])[2]);
    try testing.expectEqual(@as(u64, 0), engine.stats().live_instances);
    const good_bytes = blob(100);
    const good = try engine.module_create(&good_bytes);
    const id = engine.allocate(good, scratch);
    try testing.expectEqual(@as(i32, 0), id);
    const entries: [*]u32 = @ptrFromInt(@as(usize, @intCast(std.mem.readInt(u64, buffer[40..48], .little))));
    try testing.expectEqual(@as(u32, 8), entries[1]);
    try testing.expectEqual(engine_mod.Code.bad_module, engine.module_destroy(good));
    try testing.expectEqual(engine_mod.Code.ok, engine.dispose(@intCast(id)));
    try testing.expectEqual(engine_mod.Code.ok, engine.module_destroy(good));
}

test "on-demand instances map and unmap their own memories" {
    var c = config(.on_demand, 0);
    c.memory_pages = 65536;
    c.memory_reservation_bytes = 6 << 30;
    const engine = Engine.create(std.heap.c_allocator, &c).?;
    defer engine.release();
    const bytes = blob(100);
    const module = try engine.module_create(&bytes);
    var buffer: [128]u8 align(8) = undefined;
    const scratch = scratch_for(&buffer);
    var ids: [3]i32 = undefined;
    for (&ids) |*id| id.* = engine.allocate(module, scratch);
    try testing.expectEqual([3]i32{ 0, 1, 2 }, ids);
    try testing.expectEqual(engine_mod.Code.ok, engine.dispose(1));
    try testing.expectEqual(@as(i32, 1), engine.allocate(module, scratch));
    const base: [*]u8 = @ptrFromInt(@as(usize, @intCast(std.mem.readInt(u64, buffer[32..40], .little))));
    try testing.expectEqualStrings("hello", base[100..105]);
    try testing.expectEqual(@as(u64, 3), engine.stats().live_instances);
}

test "a config whose pages exceed the reservation is refused" {
    var c = config(.pooling, 1);
    c.memory_reservation_bytes = 65536;
    try testing.expect(Engine.create(std.heap.c_allocator, &c) == null);
    try testing.expectEqual(@intFromEnum(engine_mod.Code.bad_config), c.error_code);
}

test "four threads instantiating and disposing never share a slot" {
    const threads = 4;
    const cycles = 2000;
    var c = config(.pooling, 8);
    c.index_strategy = 1; // random: the most interleaving
    const engine = Engine.create(std.heap.c_allocator, &c).?;
    defer engine.release();
    const bytes = blob(100);
    const module = try engine.module_create(&bytes);

    const Worker = struct {
        fn run(e: *Engine, m: *module_mod.Module, failures: *std.atomic.Value(u32)) void {
            var buffer: [128]u8 align(8) = undefined;
            const scratch = Scratch{ .bytes = &buffer };
            for (0..cycles) |i| {
                const id = e.allocate(m, scratch);
                if (id < 0) {
                    // The pool (8) is larger than the threads (4): it is never full.
                    _ = failures.fetchAdd(1, .monotonic);
                    continue;
                }
                const base: [*]u8 = @ptrFromInt(@as(usize, @intCast(std.mem.readInt(u64, buffer[32..40], .little))));
                // A slot handed to two threads at once would see the other's marker here.
                if (base[5000] != 0) _ = failures.fetchAdd(1, .monotonic);
                base[5000] = @intCast(i % 250 + 1);
                if (!std.mem.eql(u8, base[100..105], "hello")) _ = failures.fetchAdd(1, .monotonic);
                if (e.dispose(@intCast(id)) != .ok) _ = failures.fetchAdd(1, .monotonic);
            }
        }
    };
    var failures = std.atomic.Value(u32).init(0);
    var handles: [threads]std.Thread = undefined;
    for (&handles) |*h| h.* = try std.Thread.spawn(.{}, Worker.run, .{ engine, module, &failures });
    for (handles) |h| h.join();
    try testing.expectEqual(@as(u32, 0), failures.load(.monotonic));
    const stats = engine.stats();
    try testing.expectEqual(@as(u64, 0), stats.live_instances);
    try testing.expectEqual(@as(u64, threads * cycles), stats.instantiations);
    try testing.expectEqual(@as(u64, threads * cycles), stats.deallocations);
}
