//! The search the readers of envelopes and messages make most: for the next of two bytes, over runs
//! that are mostly short.

/// Where the first `a` or `b` at or after `from` is. Runs between the bytes readers look for are
/// mostly short (ids, the `\"` of JSON and XML messages, the `\n\t` of stack traces, the names and
/// values of JSON messages), and on those a call to memchr costs more than the search: the first 32
/// bytes are read eight at a time in a 64-bit word, the rest of a long run by memchr.
#[inline]
pub(crate) fn first_of(bytes: &[u8], from: usize, a: u8, b: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // A byte of `x` is zero where its high bit is set in `zero_bytes(x)`; bits above a zero byte may
    // be set too, so only the lowest set bit is trusted.
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & (ONES << 7);
    let mut at = from;
    for _ in 0..4 {
        let Some(word) = bytes.get(at..at + 8).and_then(|eight| <[u8; 8]>::try_from(eight).ok()) else { break };
        let word = u64::from_le_bytes(word);
        let found = zero_bytes(word ^ (ONES * u64::from(a))) | zero_bytes(word ^ (ONES * u64::from(b)));
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    Some(at + memchr::memchr2(a, b, bytes.get(at..)?)?)
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
