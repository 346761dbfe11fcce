//! Gzip both ways: each record's payload inflated (capped, into a reused buffer), and the envelopes
//! handed back for re-ingestion deflated.

use std::cell::RefCell;

use crate::DecodeError;

mod libdeflate;

/// Decompressed payloads larger than this are refused (a gzip bomb, or not CloudWatch Logs: its
/// records are at most ~1 MB compressed).
pub const MAX_DECOMPRESSED: u64 = 64 * 1024 * 1024;

pub use fleetlog_core::schema::GZIP_MAGIC;

/// What a gzip payload's trailer says it decompresses to: its last member's length mod 2^32, so at
/// most the true size of honest data (never checked here: inflating checks it). `None` when the
/// payload is not gzip.
pub fn gzip_claimed_size(compressed: &[u8]) -> Option<usize> {
    // The smallest gzip member: a 10-byte header, an empty deflate block and the 8-byte trailer.
    const SMALLEST_MEMBER: usize = 20;
    if !compressed.starts_with(&GZIP_MAGIC) || compressed.len() < SMALLEST_MEMBER {
        return None;
    }
    let mut size = [0u8; 4];
    size.copy_from_slice(&compressed[compressed.len() - 4..]);
    usize::try_from(u32::from_le_bytes(size)).ok()
}

/// Empties `buffer` and makes room in it for `capacity` bytes. A buffer too small is replaced, not
/// grown: growing copies the old contents, which are no longer wanted.
pub(crate) fn clear_with_room(buffer: &mut Vec<u8>, capacity: usize) {
    buffer.clear();
    if buffer.capacity() < capacity {
        *buffer = Vec::with_capacity(capacity);
    }
}

// Header flags of a gzip member (RFC 1952).
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

/// Whether the gzip member at the start of `member` has no header CRC or a right one. The header CRC
/// (FHCRC) is optional and CloudWatch Logs does not write it; libdeflate skips it, but zlib and flate2
/// refuse a member whose header CRC is wrong, and so does this decoder. A header cut short passes
/// here, for the inflater to refuse.
fn header_crc_holds(member: &[u8]) -> bool {
    let Some(&flags) = member.get(3).filter(|flags| *flags & FHCRC != 0) else { return true };
    let mut end = 10;
    if flags & FEXTRA != 0 {
        let Some(&[low, high]) = member.get(10..12) else { return true };
        end = 12 + usize::from(u16::from_le_bytes([low, high]));
    }
    for field in [FNAME, FCOMMENT] {
        if flags & field != 0 {
            // Zero-terminated.
            let Some(length) = member.get(end..).and_then(|rest| memchr::memchr(0, rest)) else { return true };
            end += length + 1;
        }
    }
    let (Some(header), Some(stored)) = (member.get(..end), member.get(end..end + 2)) else { return true };
    let mut crc = flate2::Crc::new();
    crc.update(header);
    crc.sum().to_le_bytes()[..2] == *stored
}

/// Gunzips a payload into `out` (cleared first), refusing anything over [`MAX_DECOMPRESSED`].
pub fn gunzip_into(compressed: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    gunzip_at_most(compressed, out, MAX_DECOMPRESSED)
}

/// [`gunzip_into`] refusing anything over `limit` bytes instead (tests use small limits).
///
/// Each member is inflated in one call (libdeflate) straight into the vector's spare capacity, sized
/// from the gzip trailer (the last member's length mod 2^32: all of it for the one member CloudWatch
/// Logs sends), so the output is neither zero-filled first nor copied as it grows. Concatenated
/// members are decoded one after another, like `gunzip`; anything else after a member is refused.
fn gunzip_at_most(compressed: &[u8], out: &mut Vec<u8>, limit: u64) -> Result<(), DecodeError> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if !compressed.starts_with(&GZIP_MAGIC) {
        return Err(DecodeError::NotGzip);
    }
    clear_with_room(out, gzip_claimed_size(compressed).unwrap_or(0).clamp(1024.min(limit), limit));
    INFLATER.with_borrow_mut(|inflater| {
        let inflater = match inflater {
            Some(inflater) => inflater,
            None => inflater.insert(libdeflate::Inflater::new().ok_or(DecodeError::OutOfMemory)?),
        };
        inflate_members(inflater, compressed, out, limit)
    })
}

thread_local! {
    /// Each thread's decompressor, reused: setting one up costs about as much as inflating a small
    /// record.
    static INFLATER: RefCell<Option<libdeflate::Inflater>> = const { RefCell::new(None) };
}

fn inflate_members(
    inflater: &mut libdeflate::Inflater,
    compressed: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), DecodeError> {
    let too_large = DecodeError::TooLarge(u64::try_from(limit).unwrap_or(u64::MAX));
    let mut input = compressed;
    while !input.is_empty() {
        if !input.starts_with(&GZIP_MAGIC) {
            return Err(DecodeError::BadGzip("trailing bytes after the gzip data".into()));
        }
        if !header_crc_holds(input) {
            return Err(DecodeError::BadGzip("gzip header CRC does not match the header".into()));
        }
        let room = out.capacity() - out.len();
        match inflater.member(input, out, room.min(limit - out.len())) {
            Ok(consumed) => input = &input[consumed..],
            Err(libdeflate::MemberError::NoRoom) if out.len() + room >= limit => return Err(too_large),
            // A member larger than the trailer said (an earlier one, or a lying trailer): inflated
            // again with twice the room.
            Err(libdeflate::MemberError::NoRoom) => out.reserve(room.max(1024) * 2),
            Err(libdeflate::MemberError::Corrupt) => {
                return Err(DecodeError::BadGzip("corrupt or truncated gzip member".into()));
            }
        }
    }
    Ok(())
}

/// Gzips bytes: the envelopes handed back for re-ingestion.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gunzip(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let mut out = b"left over from the previous record".to_vec();
        gunzip_into(data, &mut out).map(|()| out)
    }

    #[test]
    fn inflates_exactly_and_checks_the_trailer() {
        let text: Vec<u8> = (0..200_000u32).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        let honest = gzip(&text);
        assert_eq!(gunzip(&honest).unwrap(), text);
        // The trailer's size only sizes the buffer; inflate checks it, so a lying one is refused.
        for claimed in [0u32, 1, u32::MAX] {
            let mut lying = honest.clone();
            let at = lying.len() - 4;
            lying[at..].copy_from_slice(&claimed.to_le_bytes());
            assert!(matches!(gunzip(&lying), Err(DecodeError::BadGzip(_))), "{claimed}");
        }
        assert_eq!(gunzip(&gzip(b"")).unwrap(), b"");
    }

    #[test]
    fn concatenated_members_are_one_payload() {
        let mut two = gzip(b"first ");
        two.extend(gzip(b"second"));
        assert_eq!(gunzip(&two).unwrap(), b"first second");
        // The trailer sizes the buffer by the last member only: a larger first one is inflated
        // again, with more room, until it fits.
        let large: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut uneven = gzip(&large);
        uneven.extend(gzip(b"tail"));
        assert_eq!(gunzip(&uneven).unwrap(), [&large[..], b"tail"].concat());
    }

    /// `member` as [`gzip`] writes it (a bare 10-byte header) with the header fields `fields` asks for
    /// (its FHCRC, FEXTRA, FNAME and FCOMMENT bits): an extra field, a file name, a comment, and the
    /// header's CRC.
    fn with_header_fields(member: &[u8], fields: u8) -> Vec<u8> {
        let mut out = member[..10].to_vec();
        out[3] = fields & (FHCRC | FEXTRA | FNAME | FCOMMENT);
        if fields & FEXTRA != 0 {
            out.extend([3, 0, b'x', b'y', b'z']);
        }
        if fields & FNAME != 0 {
            out.extend(b"logs.json\0");
        }
        if fields & FCOMMENT != 0 {
            out.extend(b"a comment\0");
        }
        if fields & FHCRC != 0 {
            let mut crc = flate2::Crc::new();
            crc.update(&out);
            out.extend(&crc.sum().to_le_bytes()[..2]);
        }
        out.extend(&member[10..]);
        out
    }

    #[test]
    fn header_crcs_are_checked() {
        let member = with_header_fields(&gzip(b"hello"), FHCRC | FNAME | FEXTRA | FCOMMENT);
        assert_eq!(gunzip(&member).unwrap(), b"hello");
        // The header CRC is the two bytes before the deflate data (what follows the bare header).
        let crc_at = member.len() - (gzip(b"hello").len() - 10) - 2;
        let mut wrong = member.clone();
        wrong[crc_at] ^= 1;
        assert!(matches!(gunzip(&wrong), Err(DecodeError::BadGzip(reason)) if reason.contains("header")));
    }

    proptest::proptest! {
        /// The same answer as flate2's multi-member reader (zlib-rs): the same bytes, or an error,
        /// whatever the members, trailing bytes or damage.
        #[test]
        fn agrees_with_a_streaming_gunzip(
            // Repeated members too: a later member's trailer then matches the first member's output.
            members in proptest::collection::vec(proptest::prop_oneof!["same", "[ab\n]{0,2000}", ".{0,300}"], 1..4),
            // Header fields of each member (FHCRC, FEXTRA, FNAME, FCOMMENT bits).
            fields in proptest::collection::vec(0u8..32, 4),
            trailing in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..6),
            damage in proptest::option::of((proptest::prelude::any::<proptest::sample::Index>(), 1u8..)),
        ) {
            use std::io::Read;
            let mut payload: Vec<u8> = members
                .iter()
                .zip(&fields)
                .flat_map(|(member, fields)| with_header_fields(&gzip(member.as_bytes()), *fields))
                .collect();
            payload.extend(&trailing);
            if let Some((at, flip)) = damage {
                let at = at.index(payload.len());
                payload[at] ^= flip;
            }
            let mut expected = Vec::new();
            let expected = flate2::read::MultiGzDecoder::new(&payload[..]).read_to_end(&mut expected).map(|_| expected);
            match gunzip(&payload) {
                Ok(out) => proptest::prop_assert_eq!(Some(out), expected.ok()),
                Err(_) => proptest::prop_assert!(expected.is_err(), "refused what gunzip reads"),
            }
        }
    }

    #[test]
    fn damaged_gzip_is_refused_with_a_reason() {
        let good = gzip(&b"x".repeat(10_000));
        assert_eq!(gunzip(b"plain"), Err(DecodeError::NotGzip));
        assert!(matches!(gunzip(&good[..good.len() / 2]), Err(DecodeError::BadGzip(_))));
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"junk");
        assert!(matches!(gunzip(&trailing), Err(DecodeError::BadGzip(_))));
        let mut corrupt = good;
        corrupt[12] ^= 0xff;
        assert!(matches!(gunzip(&corrupt), Err(DecodeError::BadGzip(_))));
    }

    #[test]
    fn output_beyond_the_cap_is_refused() {
        let bomb = gzip(&vec![0u8; usize::try_from(MAX_DECOMPRESSED).unwrap() + 1]);
        assert_eq!(gunzip(&bomb), Err(DecodeError::TooLarge(MAX_DECOMPRESSED)));
        let at_cap = gzip(&vec![0u8; usize::try_from(MAX_DECOMPRESSED).unwrap()]);
        assert_eq!(gunzip(&at_cap).map(|out| out.len()), Ok(usize::try_from(MAX_DECOMPRESSED).unwrap()));
        // Another cap, over members as a whole.
        let mut two = gzip(&[7; 600]);
        two.extend(gzip(&[8; 400]));
        let mut out = Vec::new();
        assert_eq!(gunzip_at_most(&two, &mut out, 999), Err(DecodeError::TooLarge(999)));
        assert_eq!(gunzip_at_most(&two, &mut out, 1000), Ok(()));
        assert_eq!(out.len(), 1000);
    }
}
