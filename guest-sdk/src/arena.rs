//! The module's allocator: allocations from a fixed region of the module's initial memory first,
//! then from the standard allocator.
//!
//! An isolated-mode module is a fresh instance for every customer. The standard allocator
//! (wasi-libc's malloc) starts from what the initial memory has left after the stack and the
//! data, a few tens of kilobytes, and grows linear memory once a customer's rows outgrow that:
//! a call into the host's limiter and pages made accessible, then reset and made inaccessible
//! again when the slot is reused, for every such customer. This allocator serves allocations
//! from [`ARENA_BYTES`] reserved in the module's zero-initialized data, which is part of its
//! initial memory, so a customer with thousands of card transactions never grows it either; and
//! handing out space in order is cheaper than malloc's bookkeeping. It takes back only the most
//! recent allocation (a vector that grows and shrinks at the end of the region stays in place);
//! anything else freed in the region stays used until the instance goes, which an isolation
//! unit never notices. Once the region is full, allocations go to the standard allocator as
//! before, so a batched or table-mode module that allocates much more works as it always did.
//!
//! Switch it off with `default-features = false` (for example, to bring a global allocator of
//! your own).

// A global allocator is unsafe by nature: this module is the SDK's only unsafe code.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes served from the module's initial memory before the standard allocator takes over.
pub const ARENA_BYTES: usize = 256 << 10;

#[repr(C, align(16))]
struct Region(UnsafeCell<[u8; ARENA_BYTES]>);

// SAFETY: a module instance has one thread (wasm32-wasip2 without threads); the region is only
// reached through `Arena`, which hands out disjoint ranges.
unsafe impl Sync for Region {}

static REGION: Region = Region(UnsafeCell::new([0; ARENA_BYTES]));
/// Offset of the first free byte of the region.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The global allocator the SDK installs (see the module doc).
pub struct Arena;

fn base() -> usize {
    REGION.0.get() as usize
}

fn in_region(ptr: *mut u8) -> bool {
    let at = ptr as usize;
    at >= base() && at < base() + ARENA_BYTES
}

// SAFETY: every range handed out lies inside the region and is disjoint from every other live
// one (the offset only moves back over the most recent allocation when it is freed or resized);
// everything else is the standard allocator's, called with the caller's layout.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let next = NEXT.load(Ordering::Relaxed);
        let start = (base() + next).next_multiple_of(layout.align()) - base();
        match start.checked_add(layout.size()) {
            Some(end) if end <= ARENA_BYTES => {
                NEXT.store(end, Ordering::Relaxed);
                (base() + start) as *mut u8
            }
            // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
            _ => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if in_region(ptr) {
            // Only the most recent allocation gives its space back.
            let start = ptr as usize - base();
            if start + layout.size() == NEXT.load(Ordering::Relaxed) {
                NEXT.store(start, Ordering::Relaxed);
            }
        } else {
            // SAFETY: `ptr` came from `System` with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if in_region(ptr) {
            let start = ptr as usize - base();
            let last = start + layout.size() == NEXT.load(Ordering::Relaxed);
            if last && start + new_size <= ARENA_BYTES {
                NEXT.store(start + new_size, Ordering::Relaxed);
                return ptr;
            }
            if new_size <= layout.size() {
                return ptr;
            }
            // SAFETY: a valid layout (the caller's alignment, a size it vouched for).
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            // SAFETY: as above.
            let moved = unsafe { self.alloc(new_layout) };
            if !moved.is_null() {
                // SAFETY: both ranges are valid for `layout.size()` bytes and disjoint (the new
                // one was handed out after the old one, which is still live).
                unsafe { std::ptr::copy_nonoverlapping(ptr, moved, layout.size()) };
                // SAFETY: `ptr` was allocated here with `layout`.
                unsafe { self.dealloc(ptr, layout) };
            }
            moved
        } else {
            // SAFETY: `ptr` came from `System` with `layout`.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}
