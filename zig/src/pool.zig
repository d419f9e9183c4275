//! The pooling allocator: address space for every instance reserved once, at engine creation,
//! one mapping per pool. Instance `i` owns memory slots [i*memories, (i+1)*memories) and table
//! slots likewise; its native state lives in the instance pool.

const std = @import("std");
const assert = std.debug.assert;
const sys = @import("sys.zig");
const layout_mod = @import("layout.zig");
const IndexAllocator = @import("index_allocator.zig").IndexAllocator;
const Strategy = @import("index_allocator.zig").Strategy;
const MemoryState = @import("memory.zig").MemoryState;
const TableState = @import("table.zig").TableState;
const InstanceState = @import("instance.zig").InstanceState;
const uffd = @import("uffd.zig");

pub const Layout = layout_mod.Layout;
pub const Limits = layout_mod.Limits;

pub const Region = struct {
    base: [*]align(sys.page_size_bytes) u8,
    size_bytes: u64,
};

pub const InitError = error{ Overflow, OutOfMemory, ReservationFailed, ProtectFailed, UffdRegisterFailed };

/// Which pool failed to map and why, for the error message.
pub const Failure = struct {
    pool: PoolKind = .instances,
    size_bytes: u64 = 0,
    errno: sys.Errno = 0,
};

pub const PoolKind = enum(u32) { instances = 0, memories = 1, tables = 2, stacks = 3 };

pub const Pool = struct {
    limits: Limits,
    /// mprotect mode: bytes at the start of each memory restored in place on reset.
    keep_resident_bytes: u64 = 0,
    layout: Layout,
    index_allocator: IndexAllocator,
    instance_region: Region,
    memory_region: ?Region,
    table_region: ?Region,
    stack_region: ?Region,
    instances: []InstanceState,

    pub fn init(
        allocator: std.mem.Allocator,
        limits: Limits,
        strategy: Strategy,
        seed: u64,
        max_unused_warm_slots: u32,
        uffd_fd: ?i32,
        failure: *Failure,
    ) InitError!Pool {
        const layout = try layout_mod.compute(limits);
        var index_allocator = try IndexAllocator.init(allocator, limits.instance_count, strategy, seed, max_unused_warm_slots);
        errdefer index_allocator.deinit(allocator);

        const count: u64 = limits.instance_count;
        const memory_states = count * limits.memories;
        const table_states = count * limits.tables;
        const instances_bytes = align64(count * @sizeOf(InstanceState));
        const memory_states_bytes = align64(memory_states * @sizeOf(MemoryState));
        const table_states_bytes = align64(table_states * @sizeOf(TableState));
        const instance_pool_bytes = sys.round_up_to_page(instances_bytes + memory_states_bytes +
            table_states_bytes) orelse return error.Overflow;

        const instance_region = try map(.instances, instance_pool_bytes, .read_write, failure);
        errdefer unmap(instance_region);
        const memory_region = try map_optional(.memories, layout.memory_pool_bytes, .reserve, failure);
        errdefer if (memory_region) |r| unmap(r);
        const table_region = try map_optional(.tables, layout.table_pool_bytes, .read_write, failure);
        errdefer if (table_region) |r| unmap(r);
        const stack_region = try map_optional(.stacks, layout.stack_pool_bytes, .read_write, failure);
        errdefer if (stack_region) |r| unmap(r);

        const base = instance_region.base;
        const instances: []InstanceState = @alignCast(std.mem.bytesAsSlice(
            InstanceState,
            base[0 .. count * @sizeOf(InstanceState)],
        ));
        const memories: []MemoryState = @alignCast(std.mem.bytesAsSlice(
            MemoryState,
            base[instances_bytes..][0 .. memory_states * @sizeOf(MemoryState)],
        ));
        const tables: []TableState = @alignCast(std.mem.bytesAsSlice(
            TableState,
            base[instances_bytes + memory_states_bytes ..][0 .. table_states * @sizeOf(TableState)],
        ));

        for (memories, 0..) |*state, slot| {
            if (memory_region) |r| {
                const slot_base: [*]align(sys.page_size_bytes) u8 =
                    @alignCast(r.base + slot * layout.memory_slot_bytes);
                state.* = MemoryState.init(slot_base, layout.memory_slot_bytes);
                if (uffd_fd) |fd| try register_uffd(state, fd, limits.memory_pages, failure);
            } else {
                state.* = MemoryState.init(base, 0);
            }
        }
        const table_capacity: u32 = @intCast(layout.table_slot_bytes / @sizeOf(u32));
        for (tables, 0..) |*state, slot| {
            if (table_region) |r| {
                state.* = TableState.init(@ptrCast(@alignCast(r.base + slot * layout.table_slot_bytes)), table_capacity);
            } else {
                state.* = TableState.init(@ptrCast(base), 0);
            }
        }
        for (instances, 0..) |*instance, i| {
            instance.* = .{
                .live = false,
                .module = null,
                .memory_slots = memories[i * limits.memories ..][0..limits.memories],
                .table_slots = tables[i * limits.tables ..][0..limits.tables],
                .memory_count = 0,
                .table_count = 0,
                .stack = null,
            };
            if (stack_region) |r| {
                const slot_base = r.base + i * layout.stack_slot_bytes;
                // The guard sits below the stack: stacks grow down into it.
                if (sys.protect(slot_base, sys.page_size_bytes, .none)) |errno| {
                    failure.* = .{ .pool = .stacks, .size_bytes = layout.stack_pool_bytes, .errno = errno };
                    return error.ProtectFailed;
                }
                instance.stack = slot_base + sys.page_size_bytes;
            }
        }

        return .{
            .limits = limits,
            .layout = layout,
            .index_allocator = index_allocator,
            .instance_region = instance_region,
            .memory_region = memory_region,
            .table_region = table_region,
            .stack_region = stack_region,
            .instances = instances,
        };
    }

    pub fn deinit(self: *Pool, allocator: std.mem.Allocator) void {
        self.index_allocator.deinit(allocator);
        if (self.stack_region) |r| unmap(r);
        if (self.table_region) |r| unmap(r);
        if (self.memory_region) |r| unmap(r);
        unmap(self.instance_region);
        self.* = undefined;
    }

    pub fn stack_bytes(self: *const Pool) u64 {
        if (self.layout.stack_slot_bytes == 0) return 0;
        return self.layout.stack_slot_bytes - sys.page_size_bytes;
    }
};

/// uffd mode: the slot's `[0, memory_pages)` is read-write for good and registered; the guard
/// region beyond stays PROT_NONE and unregistered, so the handler never sees a fault there.
fn register_uffd(state: *MemoryState, fd: i32, memory_pages: u32, failure: *Failure) InitError!void {
    const bytes = @as(u64, memory_pages) * @import("memory.zig").wasm_page_bytes;
    if (sys.protect(state.base, bytes, .read_write)) |errno| {
        failure.* = .{ .pool = .memories, .size_bytes = bytes, .errno = errno };
        return error.ProtectFailed;
    }
    // No page of a tenant is ever shared with a forked child or merged by KSM: a shared page
    // in the range is then always the zero page, which a keep-resident reset need not restore.
    if (sys.advise_private(state.base, bytes)) |errno| {
        failure.* = .{ .pool = .memories, .size_bytes = bytes, .errno = errno };
        return error.ProtectFailed;
    }
    if (uffd.register(fd, state.base, bytes)) |errno| {
        failure.* = .{ .pool = .memories, .size_bytes = bytes, .errno = errno };
        return error.UffdRegisterFailed;
    }
    state.mode = .uffd;
    state.accessible_bytes = bytes;
}

fn align64(n: u64) u64 {
    return sys.round_up(n, 64).?;
}

const MapKind = enum { reserve, read_write };

fn map_optional(pool: PoolKind, size_bytes: u64, kind: MapKind, failure: *Failure) InitError!?Region {
    if (size_bytes == 0) return null;
    return try map(pool, size_bytes, kind, failure);
}

fn map(pool: PoolKind, size_bytes: u64, kind: MapKind, failure: *Failure) InitError!Region {
    assert(size_bytes > 0);
    var errno: sys.Errno = 0;
    const base = switch (kind) {
        .reserve => sys.reserve(size_bytes, &errno),
        .read_write => sys.map_read_write(size_bytes, &errno),
    } orelse {
        failure.* = .{ .pool = pool, .size_bytes = size_bytes, .errno = errno };
        return error.ReservationFailed;
    };
    return .{ .base = base, .size_bytes = size_bytes };
}

fn unmap(region: Region) void {
    sys.unmap(region.base, region.size_bytes);
}

const testing = std.testing;

test "slot slicing: instance i owns memory slots [i*memories, (i+1)*memories)" {
    var failure: Failure = .{};
    var pool = try Pool.init(testing.allocator, .{
        .instance_count = 3,
        .memories = 2,
        .tables = 2,
        .memory_pages = 1,
        .table_elements = 10,
        .memory_reservation_bytes = 65536,
        .stack_bytes = 4096,
    }, .next_available, 0, 0, null, &failure);
    defer pool.deinit(testing.allocator);
    const memory_base = @intFromPtr(pool.memory_region.?.base);
    const table_base = @intFromPtr(pool.table_region.?.base);
    for (pool.instances, 0..) |*instance, i| {
        for (instance.memory_slots, 0..) |*state, m| {
            const slot = i * 2 + m;
            try testing.expectEqual(memory_base + slot * 65536, @intFromPtr(state.base));
            try testing.expectEqual(@as(usize, 0), @intFromPtr(state.base) % 65536);
        }
        for (instance.table_slots, 0..) |*state, t| {
            const slot = i * 2 + t;
            try testing.expectEqual(table_base + slot * 4096, @intFromPtr(state.entries));
            try testing.expectEqual(@as(u32, 1024), state.capacity_elements);
        }
        try testing.expectEqual(@intFromPtr(pool.stack_region.?.base) + i * 8192 + 4096, @intFromPtr(instance.stack.?));
    }
    try testing.expect(pool.memory_region != null and pool.table_region != null);
}

test "no mapping for zero-sized pools" {
    var failure: Failure = .{};
    var pool = try Pool.init(testing.allocator, .{
        .instance_count = 2,
        .memories = 1,
        .tables = 1,
        .memory_pages = 0,
        .table_elements = 0,
        .memory_reservation_bytes = 65536,
        .stack_bytes = 0,
    }, .random, 1, 0, null, &failure);
    defer pool.deinit(testing.allocator);
    try testing.expect(pool.memory_region == null);
    try testing.expect(pool.table_region == null);
    try testing.expect(pool.stack_region == null);
}
