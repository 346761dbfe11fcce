//! libdeflate's gzip inflater, through the entry point that says where a member ends.
//!
//! The safe binding (libdeflater) calls the plain entry point, which stops at the end of the first
//! member and ignores whatever follows: a payload of concatenated members, or a damaged one, would
//! lose data without a word. This is the only `unsafe` of the decoder, kept to the two calls.

use std::ptr::NonNull;

use libdeflate_sys::{
    libdeflate_alloc_decompressor, libdeflate_decompressor, libdeflate_free_decompressor,
    libdeflate_gzip_decompress_ex, libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE,
    libdeflate_result_LIBDEFLATE_SUCCESS,
};

/// Why a member was not inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MemberError {
    /// Its output does not fit the room it was given (nothing was added to the output).
    NoRoom,
    /// Not a gzip member, truncated, or its data or trailer (CRC-32, size) do not check out.
    Corrupt,
}

pub(super) struct Inflater(NonNull<libdeflate_decompressor>);

impl Inflater {
    /// `None` only when the allocator is out of memory.
    pub(super) fn new() -> Option<Self> {
        // SAFETY: no preconditions; the result is null or a decompressor this value now owns.
        #[allow(unsafe_code)]
        NonNull::new(unsafe { libdeflate_alloc_decompressor() }).map(Self)
    }

    /// Inflates the gzip member at the start of `input`, appending at most `room` bytes to `out`.
    /// Returns how many bytes of `input` the member took (header to trailer, both checked).
    pub(super) fn member(&mut self, input: &[u8], out: &mut Vec<u8>, room: usize) -> Result<usize, MemberError> {
        out.reserve(room);
        let spare = &mut out.spare_capacity_mut()[..room];
        let (mut consumed, mut written) = (0usize, 0usize);
        // SAFETY: the decompressor is ours and used by one caller at a time (`&mut self`); `input`
        // is read within its length; libdeflate writes at most `spare.len()` bytes into `spare`
        // (reserved above) and reports how many, and nothing else.
        #[allow(unsafe_code)]
        let result = unsafe {
            libdeflate_gzip_decompress_ex(
                self.0.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                spare.as_mut_ptr().cast(),
                spare.len(),
                &mut consumed,
                &mut written,
            )
        };
        #[allow(non_upper_case_globals)]
        match result {
            libdeflate_result_LIBDEFLATE_SUCCESS if written <= room && consumed <= input.len() => {
                // SAFETY: on success libdeflate has initialised the first `written` bytes of `spare`,
                // which lies within the capacity reserved above.
                #[allow(unsafe_code)]
                unsafe {
                    out.set_len(out.len() + written)
                };
                Ok(consumed)
            }
            libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE => Err(MemberError::NoRoom),
            _ => Err(MemberError::Corrupt),
        }
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: allocated by libdeflate_alloc_decompressor, freed once, here.
        #[allow(unsafe_code)]
        unsafe {
            libdeflate_free_decompressor(self.0.as_ptr())
        }
    }
}
