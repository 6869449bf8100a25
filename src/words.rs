//! The atomic words the ring protocols are written against: std's atomics
//! in the shared mapping, loom's in the model checks.

use std::sync::atomic::Ordering;
use std::sync::atomic::{AtomicU32, AtomicU64};

/// A 64-bit atomic word (std's, or loom's in the models).
pub trait Word64 {
    fn load(&self, o: Ordering) -> u64;
    fn store(&self, v: u64, o: Ordering);
    fn cas_weak(&self, cur: u64, new: u64, ok: Ordering, err: Ordering) -> Result<u64, u64>;
    fn cas(&self, cur: u64, new: u64, ok: Ordering, err: Ordering) -> Result<u64, u64>;
}

/// A 32-bit atomic word.
pub trait Word32 {
    fn load(&self, o: Ordering) -> u32;
    fn store(&self, v: u32, o: Ordering);
}

impl Word64 for AtomicU64 {
    #[inline]
    fn load(&self, o: Ordering) -> u64 {
        AtomicU64::load(self, o)
    }
    #[inline]
    fn store(&self, v: u64, o: Ordering) {
        AtomicU64::store(self, v, o)
    }
    #[inline]
    fn cas_weak(&self, cur: u64, new: u64, ok: Ordering, err: Ordering) -> Result<u64, u64> {
        self.compare_exchange_weak(cur, new, ok, err)
    }
    #[inline]
    fn cas(&self, cur: u64, new: u64, ok: Ordering, err: Ordering) -> Result<u64, u64> {
        self.compare_exchange(cur, new, ok, err)
    }
}

impl Word32 for AtomicU32 {
    #[inline]
    fn load(&self, o: Ordering) -> u32 {
        AtomicU32::load(self, o)
    }
    #[inline]
    fn store(&self, v: u32, o: Ordering) {
        AtomicU32::store(self, v, o)
    }
}

#[cfg(all(test, loom))]
mod loom_impls {
    use super::*;
    use loom::sync::atomic::{AtomicU32 as L32, AtomicU64 as L64};

    impl Word64 for L64 {
        fn load(&self, o: Ordering) -> u64 {
            L64::load(self, o)
        }
        fn store(&self, v: u64, o: Ordering) {
            L64::store(self, v, o)
        }
        fn cas_weak(&self, cur: u64, new: u64, ok: Ordering, err: Ordering) -> Result<u64, u64> {
            self.compare_exchange_weak(cur, new, ok, err)
        }
        fn cas(&self, cur: u64, new: u64, ok: Ordering, err: Ordering) -> Result<u64, u64> {
            self.compare_exchange(cur, new, ok, err)
        }
    }

    impl Word32 for L32 {
        fn load(&self, o: Ordering) -> u32 {
            L32::load(self, o)
        }
        fn store(&self, v: u32, o: Ordering) {
            L32::store(self, v, o)
        }
    }
}
