//! Grouping work so each AWS call carries as much as the API allows.

use std::collections::BTreeMap;

/// SendCommand accepts at most 50 instance IDs per call.
pub const MAX_SEND_COMMAND_TARGETS: usize = 50;

/// Groups items by key, keeping first-seen order of keys and items, and splits each group into chunks
/// of at most `max` items.
pub fn group_in_chunks<K: Ord + Clone, V>(items: impl IntoIterator<Item = (K, V)>, max: usize) -> Vec<(K, Vec<V>)> {
    let max = max.max(1);
    let mut order: Vec<K> = Vec::new();
    let mut groups: BTreeMap<K, Vec<V>> = BTreeMap::new();
    for (key, value) in items {
        groups
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(value);
    }
    let mut out = Vec::new();
    for key in order {
        let mut values = groups.remove(&key).unwrap_or_default();
        while values.len() > max {
            let rest = values.split_off(max);
            out.push((key.clone(), values));
            values = rest;
        }
        out.push((key, values));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_key_and_caps_chunk_size() {
        let items = (0..120).map(|i| (if i % 3 == 0 { "win" } else { "linux" }, i));
        let chunks = group_in_chunks(items, 50);
        let shape: Vec<(&str, usize)> = chunks.iter().map(|(k, v)| (*k, v.len())).collect();
        assert_eq!(shape, [("win", 40), ("linux", 50), ("linux", 30)]);
        let total: usize = chunks.iter().map(|(_, v)| v.len()).sum();
        assert_eq!(total, 120);
    }

    #[test]
    fn empty_input_gives_no_chunks() {
        assert!(group_in_chunks(Vec::<(u8, u8)>::new(), 50).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn every_item_lands_once_in_a_chunk_no_larger_than_max(keys in proptest::collection::vec(0u8..5, 0..400), max in 1usize..60) {
            let items: Vec<(u8, usize)> = keys.iter().copied().zip(0..).collect();
            let chunks = group_in_chunks(items.clone(), max);
            let mut seen: Vec<(u8, usize)> = chunks.iter().flat_map(|(k, v)| v.iter().map(move |i| (*k, *i))).collect();
            seen.sort();
            let mut expected = items;
            expected.sort();
            proptest::prop_assert_eq!(seen, expected);
            proptest::prop_assert!(chunks.iter().all(|(_, v)| !v.is_empty() && v.len() <= max));
        }
    }
}
