//! The search the readers of envelopes and messages make most: for the next of two bytes, over runs
//! that are mostly short.

use wide::u8x16;

/// Where the first `a` or `b` at or after `from` is. Runs between the bytes readers look for are
/// mostly short (ids, the `\"` of JSON and XML messages, the `\n\t` of stack traces, the names and
/// values of JSON messages), and on those a call to memchr costs more than the search: sixteen bytes
/// at a time, compared in one vector each and told apart by a bit mask, inline.
#[inline]
pub(crate) fn first_of(bytes: &[u8], from: usize, a: u8, b: u8) -> Option<usize> {
    let (a16, b16) = (u8x16::splat(a), u8x16::splat(b));
    let mut at = from;
    while let Some(block) = bytes.get(at..at + 16).and_then(|block| <[u8; 16]>::try_from(block).ok()) {
        let block = u8x16::new(block);
        let found = (block.cmp_eq(a16) | block.cmp_eq(b16)).move_mask();
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize);
        }
        at += 16;
    }
    Some(at + bytes.get(at..)?.iter().position(|byte| *byte == a || *byte == b)?)
}

/// Where the first `byte` at or after `from` is, searched as [`first_of`] searches.
#[inline]
pub(crate) fn first(bytes: &[u8], from: usize, byte: u8) -> Option<usize> {
    first_of(bytes, from, byte, byte)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The word-at-a-time search finds what memchr finds, wherever it starts and whatever
        /// surrounds a match (bytes one above the sought ones, high bytes, runs past 32 bytes).
        #[test]
        fn finds_what_memchr_finds(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\\'), Just(b'#'), Just(b']'), Just(0x01u8), Just(0x80u8), any::<u8>(), Just(b'a')],
                0..80,
            ),
            quiet in 0usize..48,
            from in 0usize..90,
            (a, b) in prop_oneof![Just((b'"', b'\\')), Just((b'\\', b'\\')), (any::<u8>(), any::<u8>())],
        ) {
            // A quiet stretch first, so matches fall in every word and past the words.
            let bytes = [vec![b'a'; quiet], bytes].concat();
            let expected = bytes.get(from..).and_then(|rest| memchr::memchr2(a, b, rest)).map(|i| from + i);
            prop_assert_eq!(first_of(&bytes, from, a, b), expected, "{:?} from {}", bytes, from);
        }
    }
}
