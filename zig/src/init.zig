//! Segmented initialization: element segments, then data segments, in module order, each
//! bounds-checked before it is copied (bulk-memory semantics: the first segment that does not
//! fit stops instantiation; nothing is written for it).

const std = @import("std");
const module_mod = @import("module.zig");
const Module = module_mod.Module;
const Scratch = @import("scratch.zig").Scratch;
const MemoryState = @import("memory.zig").MemoryState;
const TableState = @import("table.zig").TableState;
const wasm_page_bytes = @import("memory.zig").wasm_page_bytes;

pub const Error = error{ DataOutOfBounds, ElemOutOfBounds, BadImport };

/// Finds the memories and tables a module imports, by the references in the scratch area.
pub const Resolver = struct {
    context: *anyopaque,
    memory: *const fn (context: *anyopaque, instance: u32, index: u32) ?*MemoryState,
    table: *const fn (context: *anyopaque, instance: u32, index: u32) ?*TableState,
};

pub fn initialize(
    module: *const Module,
    memories: []MemoryState,
    tables: []TableState,
    scratch: Scratch,
    resolver: Resolver,
    /// False when the data is served as pages by the uffd handler instead.
    apply_data: bool,
) Error!void {
    const header = module.header;
    for (module.elems, 0..) |desc, segment| {
        const table = try resolve_table(header, tables, scratch, resolver, desc.table_index);
        const offset = segment_offset(header, scratch, desc.offset_kind, desc.offset_value);
        const entries = module.elem_entries(desc);
        if (@as(u64, offset) + entries.len > table.size_elements) {
            scratch.set_detail(&.{ @intCast(segment), desc.table_index, offset, desc.entries_count, table.size_elements });
            return error.ElemOutOfBounds;
        }
        @memcpy(table.entries[offset..][0..entries.len], entries);
    }
    if (!apply_data) return;
    for (module.data, 0..) |desc, segment| {
        const memory = try resolve_memory(header, memories, scratch, resolver, desc.memory_index);
        const offset = segment_offset(header, scratch, desc.offset_kind, desc.offset_value);
        const pages = memory.pages.load(.acquire);
        if (@as(u64, offset) + desc.bytes_len > @as(u64, pages) * wasm_page_bytes) {
            scratch.set_detail(&.{ @intCast(segment), desc.memory_index, offset, desc.bytes_len, pages });
            return error.DataOutOfBounds;
        }
        @memcpy(memory.base[offset..][0..desc.bytes_len], module.data_bytes(desc));
    }
}

fn segment_offset(header: *const module_mod.Header, scratch: Scratch, kind: module_mod.OffsetKind, value: u32) u32 {
    return switch (kind) {
        .constant => value,
        // i32 globals: the low 32 bits, read as unsigned like any memory offset.
        .imported_global => @truncate(scratch.imported_global(header, value)),
        _ => unreachable, // module.create refused the blob.
    };
}

fn resolve_memory(header: *const module_mod.Header, memories: []MemoryState, scratch: Scratch, resolver: Resolver, index: u32) Error!*MemoryState {
    if (index < header.imported_memories) {
        const ref = scratch.imported_memory(header, index);
        return resolver.memory(resolver.context, ref.instance, ref.index) orelse {
            scratch.set_detail(&.{ 0, index, ref.instance, ref.index });
            return error.BadImport;
        };
    }
    return &memories[index - header.imported_memories];
}

fn resolve_table(header: *const module_mod.Header, tables: []TableState, scratch: Scratch, resolver: Resolver, index: u32) Error!*TableState {
    if (index < header.imported_tables) {
        const ref = scratch.imported_table(header, index);
        return resolver.table(resolver.context, ref.instance, ref.index) orelse {
            scratch.set_detail(&.{ 1, index, ref.instance, ref.index });
            return error.BadImport;
        };
    }
    return &tables[index - header.imported_tables];
}
