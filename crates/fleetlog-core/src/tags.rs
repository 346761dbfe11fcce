//! The management tag: exact, case-sensitive matching, and case-only near misses reported.

use std::collections::BTreeMap;

/// The tag key and value that enroll an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagementTag {
    pub key: String,
    pub value: String,
}

/// What an instance's tags say about management.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagVerdict {
    /// The exact key carries the exact value.
    Managed,
    /// A tag matches only when case is ignored: not enrolled, but reported so the owner can fix it.
    CaseMismatch { key: String, value: String },
    /// No management tag (or the key with another value).
    NotManaged,
}

impl ManagementTag {
    pub fn verdict(&self, tags: &BTreeMap<String, String>) -> TagVerdict {
        if tags.get(&self.key) == Some(&self.value) {
            return TagVerdict::Managed;
        }
        tags.iter()
            .find(|(k, v)| k.eq_ignore_ascii_case(&self.key) && v.eq_ignore_ascii_case(&self.value))
            .map_or(TagVerdict::NotManaged, |(k, v)| TagVerdict::CaseMismatch { key: k.clone(), value: v.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag() -> ManagementTag {
        ManagementTag { key: "fleetlog:managed".into(), value: "true".into() }
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn exact_tag_is_managed() {
        assert_eq!(tag().verdict(&tags(&[("fleetlog:managed", "true")])), TagVerdict::Managed);
    }

    #[test]
    fn case_only_differences_are_reported_not_managed() {
        for (k, v) in [("Fleetlog:Managed", "true"), ("fleetlog:managed", "True"), ("FLEETLOG:MANAGED", "TRUE")] {
            assert_eq!(tag().verdict(&tags(&[(k, v)])), TagVerdict::CaseMismatch { key: k.into(), value: v.into() });
        }
    }

    #[test]
    fn other_values_and_absent_tags_are_not_managed() {
        assert_eq!(tag().verdict(&tags(&[("fleetlog:managed", "false")])), TagVerdict::NotManaged);
        assert_eq!(tag().verdict(&tags(&[("Name", "web")])), TagVerdict::NotManaged);
        assert_eq!(tag().verdict(&tags(&[])), TagVerdict::NotManaged);
    }

    #[test]
    fn exact_match_wins_over_a_near_miss_alongside_it() {
        let both = tags(&[("Fleetlog:managed", "true"), ("fleetlog:managed", "true")]);
        assert_eq!(tag().verdict(&both), TagVerdict::Managed);
    }
}
