//! The management tag: exact, case-sensitive matching, and case-only near misses reported; and the
//! ownership tags an enrollment record keeps.

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

/// The keys of the tags naming an instance's application and owner (exact case, like the
/// management tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnershipTags {
    pub application: String,
    pub owner: String,
}

/// What an instance's ownership tags say; an empty value says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    pub application: Option<String>,
    pub owner: Option<String>,
}

impl OwnershipTags {
    pub fn read(&self, tags: &BTreeMap<String, String>) -> Ownership {
        let value = |key: &str| tags.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()).map(str::to_owned);
        Ownership { application: value(&self.application), owner: value(&self.owner) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_is_read_from_the_exact_keys() {
        let keys = OwnershipTags { application: "Application".into(), owner: "Owner".into() };
        let tags = BTreeMap::from([
            ("Application".to_owned(), " shop ".to_owned()),
            ("owner".to_owned(), "wrong-case@example.com".to_owned()),
        ]);
        assert_eq!(keys.read(&tags), Ownership { application: Some("shop".into()), owner: None });
        let empty = BTreeMap::from([("Application".to_owned(), " ".to_owned())]);
        assert_eq!(keys.read(&empty), Ownership::default());
    }

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
