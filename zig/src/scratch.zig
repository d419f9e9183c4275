//! The scratch area shared with the TypeScript side for one call: inputs (imports) and outputs
//! (base addresses, error detail) travel through it so that instantiation is one FFI call.
//! Layout: 8 × u32 of error detail, then u64 slots in this order: the base address of each
//! defined memory, of each defined table, an (instance, index) reference for each imported
//! memory and each imported table, and the value of each imported global.

const std = @import("std");
const assert = std.debug.assert;
const Header = @import("module.zig").Header;

pub const detail_words = 8;
pub const detail_bytes: u64 = detail_words * 4;

pub const Ref = struct { instance: u32, index: u32 };

pub const Scratch = struct {
    bytes: []align(8) u8,

    pub fn required_bytes(header: *const Header) u64 {
        const slots = @as(u64, header.defined_memories) + header.defined_tables +
            header.imported_memories + header.imported_tables + header.imported_globals;
        return detail_bytes + slots * 8;
    }

    pub fn detail(self: Scratch) *[detail_words]u32 {
        return @ptrCast(self.bytes.ptr);
    }

    pub fn set_detail(self: Scratch, values: []const u32) void {
        assert(values.len <= detail_words);
        const words = self.detail();
        @memset(words, 0);
        @memcpy(words[0..values.len], values);
    }

    fn slot(self: Scratch, index: u64) *u64 {
        assert(detail_bytes + (index + 1) * 8 <= self.bytes.len);
        const slots: [*]u64 = @ptrCast(@alignCast(self.bytes.ptr + detail_bytes));
        return &slots[index];
    }

    pub fn set_memory_base(self: Scratch, header: *const Header, memory: u32, address: usize) void {
        assert(memory < header.defined_memories);
        self.slot(memory).* = address;
    }

    pub fn set_table_base(self: Scratch, header: *const Header, table: u32, address: usize) void {
        assert(table < header.defined_tables);
        self.slot(@as(u64, header.defined_memories) + table).* = address;
    }

    pub fn imported_memory(self: Scratch, header: *const Header, k: u32) Ref {
        assert(k < header.imported_memories);
        return unpack(self.slot(@as(u64, header.defined_memories) + header.defined_tables + k).*);
    }

    pub fn imported_table(self: Scratch, header: *const Header, k: u32) Ref {
        assert(k < header.imported_tables);
        const first = @as(u64, header.defined_memories) + header.defined_tables + header.imported_memories;
        return unpack(self.slot(first + k).*);
    }

    pub fn imported_global(self: Scratch, header: *const Header, k: u32) u64 {
        assert(k < header.imported_globals);
        const first = @as(u64, header.defined_memories) + header.defined_tables +
            header.imported_memories + header.imported_tables;
        return self.slot(first + k).*;
    }
};

fn unpack(word: u64) Ref {
    return .{ .instance = @truncate(word), .index = @truncate(word >> 32) };
}
