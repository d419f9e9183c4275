//! The pooling allocator's sizes, derived from the limits once at engine creation, with every
//! multiplication checked: a configuration that overflows is an error, not a wrapped size.

const std = @import("std");
const assert = std.debug.assert;
const sys = @import("sys.zig");
const memory = @import("memory.zig");
const table = @import("table.zig");

/// Wasmtime caps a memory slot at 8 GiB: 4 GiB of addressable memory plus guard.
pub const max_memory_slot_bytes: u64 = 8 << 30;

pub const Limits = struct {
    instance_count: u32,
    memories: u32,
    tables: u32,
    memory_pages: u32,
    table_elements: u32,
    memory_reservation_bytes: u64,
    stack_bytes: u64,
};

pub const Layout = struct {
    memory_slot_bytes: u64,
    memory_slots: u64,
    memory_pool_bytes: u64,
    table_slot_bytes: u64,
    table_slots: u64,
    table_pool_bytes: u64,
    /// A stack slot is one PROT_NONE guard page, then the stack.
    stack_slot_bytes: u64,
    stack_pool_bytes: u64,
};

pub const Error = error{Overflow};

pub fn compute(limits: Limits) Error!Layout {
    assert(limits.instance_count > 0);
    const count: u64 = limits.instance_count;

    var layout: Layout = std.mem.zeroes(Layout);
    // A pool whose slots would be empty is not mapped at all.
    if (limits.memories > 0 and limits.memory_pages > 0) {
        const slot = sys.round_up(limits.memory_reservation_bytes, memory.wasm_page_bytes) orelse
            return error.Overflow;
        layout.memory_slot_bytes = @min(slot, max_memory_slot_bytes);
        assert(@as(u64, limits.memory_pages) * memory.wasm_page_bytes <= layout.memory_slot_bytes);
        layout.memory_slots = try mul(count, limits.memories);
        layout.memory_pool_bytes = try mul(layout.memory_slots, layout.memory_slot_bytes);
    }
    if (limits.tables > 0 and limits.table_elements > 0) {
        const entries_bytes = @as(u64, limits.table_elements) * table.entry_bytes;
        layout.table_slot_bytes = sys.round_up_to_page(entries_bytes) orelse return error.Overflow;
        layout.table_slots = try mul(count, limits.tables);
        layout.table_pool_bytes = try mul(layout.table_slots, layout.table_slot_bytes);
    }
    if (limits.stack_bytes > 0) {
        const stack = sys.round_up_to_page(limits.stack_bytes) orelse return error.Overflow;
        layout.stack_slot_bytes = try add(stack, sys.page_size_bytes);
        layout.stack_pool_bytes = try mul(count, layout.stack_slot_bytes);
    }
    // Beyond 2^47 bytes nothing can be mapped on x86-64 or aarch64; say so as an overflow
    // rather than letting mmap fail with a less telling ENOMEM.
    const total = try add(try add(layout.memory_pool_bytes, layout.table_pool_bytes), layout.stack_pool_bytes);
    if (total >= 1 << 47) return error.Overflow;
    return layout;
}

fn mul(a: u64, b: u64) Error!u64 {
    return std.math.mul(u64, a, b) catch error.Overflow;
}

fn add(a: u64, b: u64) Error!u64 {
    return std.math.add(u64, a, b) catch error.Overflow;
}

const testing = std.testing;

const default_limits = Limits{
    .instance_count = 1000,
    .memories = 1,
    .tables = 1,
    .memory_pages = 160,
    .table_elements = 10000,
    .memory_reservation_bytes = 6 << 30,
    .stack_bytes = 0,
};

test "default limits: 6 GiB memory slots, page-rounded table slots, no stack pool" {
    const layout = try compute(default_limits);
    try testing.expectEqual(@as(u64, 6 << 30), layout.memory_slot_bytes);
    try testing.expectEqual(@as(u64, 1000), layout.memory_slots);
    try testing.expectEqual(@as(u64, 1000 * (6 << 30)), layout.memory_pool_bytes);
    try testing.expectEqual(@as(u64, 40960), layout.table_slot_bytes);
    try testing.expectEqual(@as(u64, 0), layout.stack_pool_bytes);
    try testing.expectEqual(@as(u64, 0), layout.memory_slot_bytes % memory.wasm_page_bytes);
}

test "slot sizes round up to 64 KiB and cap at 8 GiB" {
    var limits = default_limits;
    limits.memory_pages = 1;
    limits.memory_reservation_bytes = 65537;
    try testing.expectEqual(@as(u64, 131072), (try compute(limits)).memory_slot_bytes);
    limits.memory_reservation_bytes = 100 << 30;
    try testing.expectEqual(max_memory_slot_bytes, (try compute(limits)).memory_slot_bytes);
}

test "a zero-sized pool is not laid out" {
    var limits = default_limits;
    limits.memory_pages = 0;
    limits.table_elements = 0;
    const layout = try compute(limits);
    try testing.expectEqual(@as(u64, 0), layout.memory_pool_bytes);
    try testing.expectEqual(@as(u64, 0), layout.table_pool_bytes);
}

test "stack slots are a guard page plus the page-rounded stack" {
    var limits = default_limits;
    limits.stack_bytes = 1000;
    const layout = try compute(limits);
    try testing.expectEqual(@as(u64, 2 * sys.page_size_bytes), layout.stack_slot_bytes);
}

test "overflowing sizes are an error" {
    var limits = default_limits;
    limits.instance_count = std.math.maxInt(u32);
    limits.memories = std.math.maxInt(u32);
    try testing.expectError(error.Overflow, compute(limits));
    limits = default_limits;
    limits.instance_count = 100_000;
    try testing.expectError(error.Overflow, compute(limits)); // 600 TiB
}
