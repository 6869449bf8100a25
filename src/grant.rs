//! The parts of the handle and grant API that every flavour shares, written
//! once over a small per-flavour contract:
//!
//! * a `WriteGrant` has fields `len: usize` and provides
//!   `fn payload(&self) -> NonNull<u8>` (start of its `len` reserved bytes,
//!   inside the data area and owned by the grant) and
//!   `fn publish(&mut self, len: Option<u64>)` (commit `len` bytes, or give
//!   the reservation back; idempotent);
//! * a `ReadGrant` provides `fn payload(&self) -> NonNull<u8>` and
//!   `fn payload_len(&self) -> usize` for a payload it holds until dropped;
//! * a `Producer` has `try_reserve`, `reserve`, `reserve_timeout`; a
//!   `Consumer` has `try_recv` and `recv`.

/// `commit`, `commit_len`, `abort`, `as_pod_mut`, `Deref`, `DerefMut` and
/// `Drop` (which gives an uncommitted reservation back) for a `WriteGrant`.
macro_rules! write_grant_common {
    ($abort_doc:literal) => {
        impl WriteGrant<'_> {
            /// Publishes the whole reserved length.
            pub fn commit(self) {
                let len = self.len;
                self.commit_len(len);
            }

            /// Publishes the first `len` bytes as the message.
            ///
            /// # Panics
            ///
            /// If `len` is larger than the reservation.
            pub fn commit_len(mut self, len: usize) {
                assert!(
                    len <= self.len,
                    "commit_len({len}) exceeds the reservation of {}",
                    self.len
                );
                self.publish(Some(len as u64));
            }

            #[doc = $abort_doc]
            pub fn abort(mut self) {
                self.publish(None);
            }

            /// Views the first `size_of::<T>()` bytes as a `T`, to build a
            /// value in place. The payload is 8-byte aligned, so any `T`
            /// with alignment up to 8 works.
            ///
            /// # Panics
            ///
            /// If the reservation is shorter than `T` or `T` needs more than
            /// 8-byte alignment.
            pub fn as_pod_mut<T: bytemuck::Pod>(&mut self) -> &mut T {
                let n = size_of::<T>();
                bytemuck::from_bytes_mut(&mut self[..n])
            }

            /// Reserved length.
            pub fn capacity(&self) -> usize {
                self.len
            }
        }

        impl std::ops::Deref for WriteGrant<'_> {
            type Target = [u8];
            fn deref(&self) -> &[u8] {
                // SAFETY: `payload` points to `len` bytes inside the data
                // area that the protocol gives this grant alone until it
                // publishes them.
                unsafe { std::slice::from_raw_parts(self.payload().as_ptr(), self.len) }
            }
        }

        impl std::ops::DerefMut for WriteGrant<'_> {
            fn deref_mut(&mut self) -> &mut [u8] {
                // SAFETY: as in `deref`; the grant borrows its producer
                // mutably, so this is the only view of those bytes in this
                // process.
                unsafe { std::slice::from_raw_parts_mut(self.payload().as_ptr(), self.len) }
            }
        }

        impl Drop for WriteGrant<'_> {
            fn drop(&mut self) {
                self.publish(None);
            }
        }
    };
}

/// `as_pod`, `release` and `Deref` for a `ReadGrant`.
macro_rules! read_grant_common {
    ($release_doc:literal) => {
        impl ReadGrant<'_> {
            /// Views the payload as a `T` without copying, if its length is
            /// exactly `size_of::<T>()` and `T` needs at most 8-byte
            /// alignment (payloads are 8-byte aligned).
            ///
            /// # Errors
            ///
            /// `bytemuck`'s [`PodCastError`](bytemuck::PodCastError) on a
            /// size or alignment mismatch.
            pub fn as_pod<T: bytemuck::Pod>(&self) -> Result<&T, bytemuck::PodCastError> {
                bytemuck::try_from_bytes(self)
            }

            #[doc = $release_doc]
            pub fn release(self) {}
        }

        impl std::ops::Deref for ReadGrant<'_> {
            type Target = [u8];
            fn deref(&self) -> &[u8] {
                // SAFETY: `payload` points to `payload_len` committed bytes
                // inside the data area, which the producers leave alone until
                // this grant releases them on drop; the grant borrows its
                // consumer, so the release cannot happen while this borrow
                // lives.
                unsafe { std::slice::from_raw_parts(self.payload().as_ptr(), self.payload_len()) }
            }
        }
    };
}

/// `reserve` and `reserve_timeout` on a `Producer`, over its
/// `reserve_until(len, deadline)`; `$gone` says when `Disconnected` is
/// returned.
macro_rules! blocking_reserve {
    ($gone:literal) => {
        /// Reserves room for a message of up to `len` bytes, blocking while
        /// the ring is full: spinning briefly, then sleeping in the kernel
        /// until space is freed.
        ///
        /// # Errors
        ///
        /// [`SendError::TooLarge`](crate::SendError::TooLarge);
        #[doc = concat!("[`SendError::Disconnected`](crate::SendError::Disconnected) if the ring is full and ", $gone, ";")]
        /// [`SendError::Corrupt`](crate::SendError::Corrupt).
        pub fn reserve(&mut self, len: usize) -> Result<WriteGrant<'_>, crate::SendError> {
            self.reserve_until(len, None)
        }

        /// As [`reserve`](Producer::reserve), giving up with
        /// [`SendError::Timeout`](crate::SendError::Timeout) after `timeout`.
        pub fn reserve_timeout(
            &mut self,
            len: usize,
            timeout: std::time::Duration,
        ) -> Result<WriteGrant<'_>, crate::SendError> {
            self.reserve_until(len, Some(std::time::Instant::now() + timeout))
        }
    };
}

/// `try_send`, `send`, `send_timeout` on a `Producer`: reserve, copy, commit.
macro_rules! copying_send {
    () => {
        /// Copies `msg` into the ring without blocking.
        ///
        /// # Errors
        ///
        /// As [`try_reserve`](Producer::try_reserve).
        pub fn try_send(&mut self, msg: &[u8]) -> Result<(), crate::SendError> {
            let mut g = self.try_reserve(msg.len())?;
            g.copy_from_slice(msg);
            g.commit();
            Ok(())
        }

        /// Copies `msg` into the ring, blocking while it is full.
        ///
        /// # Errors
        ///
        /// As [`reserve`](Producer::reserve).
        pub fn send(&mut self, msg: &[u8]) -> Result<(), crate::SendError> {
            let mut g = self.reserve(msg.len())?;
            g.copy_from_slice(msg);
            g.commit();
            Ok(())
        }

        /// Copies `msg` into the ring, blocking at most `timeout`.
        ///
        /// # Errors
        ///
        /// As [`reserve_timeout`](Producer::reserve_timeout).
        pub fn send_timeout(
            &mut self,
            msg: &[u8],
            timeout: std::time::Duration,
        ) -> Result<(), crate::SendError> {
            let mut g = self.reserve_timeout(msg.len(), timeout)?;
            g.copy_from_slice(msg);
            g.commit();
            Ok(())
        }
    };
}

/// `try_recv_into` and `recv_into` on a `Consumer`: receive, copy, release.
macro_rules! copying_recv {
    () => {
        /// Copies the next message into `buf` (replacing its contents) and
        /// releases it, without blocking. Returns its length.
        ///
        /// # Errors
        ///
        /// As [`try_recv`](Consumer::try_recv).
        pub fn try_recv_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, crate::RecvError> {
            let g = self.try_recv()?;
            buf.clear();
            buf.extend_from_slice(&g);
            Ok(buf.len())
        }

        /// Copies the next message into `buf` (replacing its contents) and
        /// releases it, blocking while the ring is empty.
        ///
        /// # Errors
        ///
        /// As [`recv`](Consumer::recv).
        pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, crate::RecvError> {
            let g = self.recv()?;
            buf.clear();
            buf.extend_from_slice(&g);
            Ok(buf.len())
        }
    };
}

pub(crate) use {
    blocking_reserve, copying_recv, copying_send, read_grant_common, write_grant_common,
};
