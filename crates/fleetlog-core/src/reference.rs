//! Reference data: which application (and whose contact) an address or a host belongs to, read from
//! a file users keep in S3 (the stack's `ReferenceBucket` and `ReferenceKey`). The file is JSON, an array of
//! entries, each naming one match — a CIDR block (`10.1.0.0/16`), an address (`10.1.2.3`, a /32), a
//! host name or an instance id — and the application there:
//!
//! ```json
//! [{"match": "10.1.0.0/16", "application": "billing", "contact": "billing-oncall@example.com"},
//!  {"match": "web-1.internal", "application": "shop"}]
//! ```
//!
//! Addresses match the longest block that holds them; names match exactly (case-insensitively).

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

/// The most entries a file may hold: lookups stay cheap and a runaway file is refused whole.
pub const MAX_ENTRIES: usize = 100_000;

/// Whose an address or a host is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Owner {
    pub application: String,
    #[serde(default)]
    pub contact: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(rename = "match")]
    matches: String,
    application: String,
    #[serde(default)]
    contact: Option<String>,
}

/// Why a reference file cannot be used (the previous one stays in use).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("reference file is not a JSON array of {{\"match\", \"application\", \"contact\"}} entries: {0}")]
    NotJson(String),
    #[error("reference entry {index}: {reason}")]
    BadEntry { index: usize, reason: String },
    #[error("reference file holds {0} entries; at most {MAX_ENTRIES} are read")]
    TooLarge(usize),
}

/// A reference file, indexed for lookups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reference {
    /// Blocks by prefix length, longest first: an address is masked once per length present.
    blocks: Vec<(u8, bool, HashMap<IpNet, Owner>)>,
    names: HashMap<String, Owner>,
}

impl Reference {
    pub fn parse(body: &[u8]) -> Result<Self, ReferenceError> {
        let entries: Vec<Entry> = serde_json::from_slice(body).map_err(|e| ReferenceError::NotJson(e.to_string()))?;
        if entries.len() > MAX_ENTRIES {
            return Err(ReferenceError::TooLarge(entries.len()));
        }
        let mut blocks: HashMap<(u8, bool), HashMap<IpNet, Owner>> = HashMap::new();
        let mut names = HashMap::new();
        for (index, entry) in entries.into_iter().enumerate() {
            let bad = |reason: &str| ReferenceError::BadEntry { index, reason: reason.to_owned() };
            let application = entry.application.trim();
            if application.is_empty() {
                return Err(bad("application is empty"));
            }
            let owner = Owner { application: application.to_owned(), contact: entry.contact };
            let matches = entry.matches.trim();
            let block = matches
                .parse::<IpNet>()
                .ok()
                .or_else(|| matches.parse::<IpAddr>().ok().map(IpNet::from))
                .map(|net| net.trunc());
            match block {
                Some(net) => {
                    blocks.entry((net.prefix_len(), net.addr().is_ipv4())).or_default().insert(net, owner);
                }
                None if matches.is_empty() || matches.contains('/') => return Err(bad("match is no CIDR block")),
                None => {
                    names.insert(matches.to_ascii_lowercase(), owner);
                }
            }
        }
        let mut blocks: Vec<(u8, bool, HashMap<IpNet, Owner>)> =
            blocks.into_iter().map(|((len, v4), nets)| (len, v4, nets)).collect();
        blocks.sort_by_key(|block| std::cmp::Reverse(block.0));
        Ok(Self { blocks, names })
    }

    /// The owner of the longest block holding `address` (text as a log line spells it).
    pub fn of_address(&self, address: &str) -> Option<&Owner> {
        let ip: IpAddr = address.parse().ok()?;
        self.blocks.iter().filter(|(_, v4, _)| *v4 == ip.is_ipv4()).find_map(|(len, _, nets)| {
            let net = IpNet::new(ip, *len).ok()?.trunc();
            nets.get(&net)
        })
    }

    /// The owner of a host name or an instance id.
    pub fn of_name(&self, name: &str) -> Option<&Owner> {
        if self.names.is_empty() {
            return None;
        }
        self.names.get(name).or_else(|| self.names.get(&name.to_ascii_lowercase()))
    }

    pub fn len(&self) -> usize {
        self.names.len() + self.blocks.iter().map(|(_, _, nets)| nets.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The application of a log source: its instance's tag, else the reference entry of its instance
/// id, else of the host its lines name, else [`crate::traffic::UNKNOWN`].
pub fn application_of<'a>(
    tagged: Option<&'a str>,
    reference: &'a Reference,
    instance_id: Option<&str>,
    host: Option<&str>,
) -> &'a str {
    tagged
        .filter(|tag| !tag.trim().is_empty())
        .or_else(|| instance_id.and_then(|id| reference.of_name(id)).map(|o| o.application.as_str()))
        .or_else(|| host.and_then(|h| reference.of_name(h)).map(|o| o.application.as_str()))
        .unwrap_or(crate::traffic::UNKNOWN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> Reference {
        Reference::parse(
            br#"[{"match": "10.1.0.0/16", "application": "billing", "contact": "billing@example.com"},
                 {"match": "10.1.2.0/24", "application": "payments"},
                 {"match": "10.1.2.3", "application": "batch"},
                 {"match": "2001:db8::/32", "application": "edge"},
                 {"match": "Web-1.internal", "application": " shop "},
                 {"match": "i-0123456789abcdef0", "application": "search"}]"#,
        )
        .unwrap()
    }

    #[test]
    fn addresses_match_their_longest_block() {
        let reference = reference();
        let app = |ip: &str| reference.of_address(ip).map(|o| o.application.as_str());
        assert_eq!(app("10.1.9.9"), Some("billing"));
        assert_eq!(app("10.1.2.9"), Some("payments"));
        assert_eq!(app("10.1.2.3"), Some("batch"));
        assert_eq!(app("2001:db8:1::7"), Some("edge"));
        assert_eq!(app("10.2.0.1"), None);
        assert_eq!(app("not-an-ip"), None);
        assert_eq!(reference.of_address("10.1.9.9").unwrap().contact.as_deref(), Some("billing@example.com"));
        assert_eq!(reference.len(), 6);
    }

    #[test]
    fn names_match_exactly_without_case() {
        let reference = reference();
        assert_eq!(reference.of_name("web-1.internal").unwrap().application, "shop");
        assert_eq!(reference.of_name("WEB-1.INTERNAL").unwrap().application, "shop");
        assert_eq!(reference.of_name("i-0123456789abcdef0").unwrap().application, "search");
        assert_eq!(reference.of_name("web-2.internal"), None);
    }

    #[test]
    fn a_bad_file_is_refused_whole_with_where() {
        assert!(matches!(Reference::parse(b"{}"), Err(ReferenceError::NotJson(_))));
        assert_eq!(
            Reference::parse(br#"[{"match": "10.0.0.0/40", "application": "a"}]"#),
            Err(ReferenceError::BadEntry { index: 0, reason: "match is no CIDR block".into() })
        );
        assert!(matches!(
            Reference::parse(br#"[{"match": "x", "application": "a"}, {"match": "y", "application": ""}]"#),
            Err(ReferenceError::BadEntry { index: 1, .. })
        ));
        assert!(matches!(Reference::parse(br#"[{"match": "x", "app": "a"}]"#), Err(ReferenceError::NotJson(_))));
    }

    #[test]
    fn a_tag_comes_first_then_the_instance_then_the_host() {
        let reference = reference();
        let id = Some("i-0123456789abcdef0");
        assert_eq!(application_of(Some("cart"), &reference, id, None), "cart");
        assert_eq!(application_of(Some(" "), &reference, id, None), "search");
        assert_eq!(application_of(None, &reference, Some("i-1"), Some("web-1.internal")), "shop");
        assert_eq!(application_of(None, &reference, Some("i-1"), Some("db-1")), "unknown");
        assert_eq!(application_of(None, &Reference::default(), None, None), "unknown");
    }
}
