//! The on-demand allocator: every memory is its own reservation, made at instantiation (with
//! its module's image mapped copy-on-write at its start) and unmapped at disposal; every table
//! its own read-write mapping. Instance ids are reused.

const std = @import("std");
const assert = std.debug.assert;
const sys = @import("sys.zig");
const Module = @import("module.zig").Module;
const MemoryState = @import("memory.zig").MemoryState;
const TableState = @import("table.zig").TableState;
const table_entry_bytes = @import("table.zig").entry_bytes;
const InstanceState = @import("instance.zig").InstanceState;

/// Live on-demand instances at most: bounds the id table (and far exceeds what
/// vm.max_map_count lets a process map).
pub const max_instances: u32 = 1 << 22;

pub const OnDemand = struct {
    memory_reservation_bytes: u64,
    /// Indexed by instance id; null for a free id. Guarded by the engine's mutex.
    instances: std.ArrayListUnmanaged(?*InstanceState) = .empty,
    free_ids: std.ArrayListUnmanaged(u32) = .empty,
    live_count: u32 = 0,

    pub fn deinit(self: *OnDemand, allocator: std.mem.Allocator) void {
        for (self.instances.items) |maybe| {
            if (maybe) |instance| destroy_instance(allocator, instance);
        }
        self.instances.deinit(allocator);
        self.free_ids.deinit(allocator);
        self.* = undefined;
    }

    /// Reserves an id for `instance`; null when `max_instances` are live.
    pub fn register(self: *OnDemand, allocator: std.mem.Allocator, instance: *InstanceState) error{OutOfMemory}!?u32 {
        if (self.free_ids.pop()) |id| {
            assert(self.instances.items[id] == null);
            self.instances.items[id] = instance;
            self.live_count += 1;
            return id;
        }
        if (self.instances.items.len >= max_instances) return null;
        try self.free_ids.ensureTotalCapacity(allocator, self.instances.items.len + 1);
        const id: u32 = @intCast(self.instances.items.len);
        try self.instances.append(allocator, instance);
        self.live_count += 1;
        return id;
    }

    pub fn lookup(self: *OnDemand, id: u32) ?*InstanceState {
        if (id >= self.instances.items.len) return null;
        return self.instances.items[id];
    }

    pub fn unregister(self: *OnDemand, id: u32) *InstanceState {
        const instance = self.instances.items[id].?;
        self.instances.items[id] = null;
        // Capacity was ensured when the id was made, so giving it back cannot fail.
        self.free_ids.appendAssumeCapacity(id);
        self.live_count -= 1;
        return instance;
    }
};

pub const CreateError = error{ OutOfMemory, MapFailed };

/// One allocation for the state, then one mapping per memory and per table.
pub fn create_instance(
    allocator: std.mem.Allocator,
    module: *Module,
    memory_reservation_bytes: u64,
    out_errno: *sys.Errno,
) CreateError!*InstanceState {
    const memory_count: u32 = module.header.defined_memories;
    const table_count: u32 = module.header.defined_tables;
    const instance = try allocator.create(InstanceState);
    errdefer allocator.destroy(instance);
    const memories = try allocator.alloc(MemoryState, memory_count);
    errdefer allocator.free(memories);
    const tables = try allocator.alloc(TableState, table_count);
    errdefer allocator.free(tables);
    instance.* = .{
        .live = true,
        .module = module,
        .memory_slots = memories,
        .table_slots = tables,
        .memory_count = 0,
        .table_count = 0,
        .stack = null,
    };
    errdefer destroy_mappings(instance);

    for (memories, module.memories, 0..) |*state, desc, m| {
        const base = sys.reserve(memory_reservation_bytes, out_errno) orelse return error.MapFailed;
        state.* = MemoryState.init(base, memory_reservation_bytes);
        instance.memory_count += 1;
        state.max_pages = desc.max_pages;
        // The module's image, copy-on-write: its data is not copied, and its pages are shared
        // with every other instance until written.
        var failure: MemoryState.MapFailure = undefined;
        _ = state.prepare(module.image(@intCast(m)), &failure) catch {
            out_errno.* = failure.errno;
            return error.MapFailed;
        };
        if (state.protect_linear_memory(desc.min_pages)) |errno| {
            out_errno.* = errno;
            return error.MapFailed;
        }
    }
    for (tables, module.tables) |*state, desc| {
        const capacity_bytes = sys.round_up_to_page(@as(u64, desc.max_elements) * table_entry_bytes).?;
        const entries: [*]align(sys.page_size_bytes) u32 = if (capacity_bytes == 0)
            @ptrCast(&empty_table)
        else
            @ptrCast(sys.map_read_write(capacity_bytes, out_errno) orelse return error.MapFailed);
        state.* = TableState.init(entries, desc.max_elements);
        instance.table_count += 1;
        state.max_elements = desc.max_elements;
        state.size_elements = desc.min_elements;
    }
    return instance;
}

var empty_table: [0]u32 align(sys.page_size_bytes) = .{};

fn destroy_mappings(instance: *InstanceState) void {
    for (instance.memories()) |*state| sys.unmap(state.base, state.reservation_bytes);
    for (instance.tables()) |*state| {
        const capacity_bytes = sys.round_up_to_page(@as(u64, state.capacity_elements) * table_entry_bytes).?;
        if (capacity_bytes > 0) sys.unmap(@ptrCast(state.entries), capacity_bytes);
    }
    instance.memory_count = 0;
    instance.table_count = 0;
}

pub fn destroy_instance(allocator: std.mem.Allocator, instance: *InstanceState) void {
    destroy_mappings(instance);
    allocator.free(instance.memory_slots);
    allocator.free(instance.table_slots);
    allocator.destroy(instance);
}
