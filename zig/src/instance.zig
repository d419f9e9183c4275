//! An instance's native state: which module it runs and its defined memories and tables.
//! Imported memories and tables belong to the instance that defined them.

const std = @import("std");
const Module = @import("module.zig").Module;
const MemoryState = @import("memory.zig").MemoryState;
const TableState = @import("table.zig").TableState;

pub const InstanceState = struct {
    live: bool,
    module: ?*Module,
    /// The slots this instance may use; the module defines the first `memory_count`.
    memory_slots: []MemoryState,
    table_slots: []TableState,
    memory_count: u32,
    table_count: u32,
    /// The instance's stack, above its guard page; null without a stack pool.
    stack: ?[*]u8,
    /// Bytes of images its memories map copy-on-write (for the engine's stats).
    image_bytes_shared: u64 = 0,
    /// Pool slots: taken out of service for good because a reset or remapping failed.
    quarantined: bool = false,

    pub fn memories(self: *InstanceState) []MemoryState {
        return self.memory_slots[0..self.memory_count];
    }

    pub fn tables(self: *InstanceState) []TableState {
        return self.table_slots[0..self.table_count];
    }
};
