//! Reading the archive again: which partitions a date range and accounts name, and what each object
//! needs before Athena (or `fleetlog query --local`) can read it. Objects in S3 Glacier Deep Archive
//! (or Flexible Retrieval) must be restored first; a restored copy is readable until it expires, and
//! Athena reads it when the table says `read_restored_glacier_objects` (Athena User Guide, "Query
//! restored Amazon S3 Glacier objects"; skipped otherwise). A Deep Archive restore takes up to 12
//! hours at the Standard tier and 48 at Bulk (S3 User Guide, "Understanding archive retrieval
//! options").

use chrono::NaiveDate;

#[cfg(test)]
use crate::schema::LOGS_PREFIX;
use crate::schema::PARTITION_KEYS;

/// The most days one restore request covers at once: a year of daily partitions per account.
pub const MAX_DAYS: i64 = 366;

/// How long a restore takes at most, by tier (hours).
pub fn restore_hours(tier: RestoreTier) -> u32 {
    match tier {
        RestoreTier::Standard => 12,
        RestoreTier::Bulk => 48,
    }
}

/// The retrieval tier of a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestoreTier {
    #[default]
    Standard,
    Bulk,
}

impl std::str::FromStr for RestoreTier {
    type Err = String;

    /// As the CLI spells it: `standard` or `bulk`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "standard" => Ok(Self::Standard),
            "bulk" => Ok(Self::Bulk),
            other => Err(format!("{other:?} is neither standard nor bulk")),
        }
    }
}

impl RestoreTier {
    /// As S3's `GlacierJobParameters.Tier` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "Standard",
            Self::Bulk => "Bulk",
        }
    }
}

/// The days from `from` to `to`, both included, as the `dt` partition spells them.
pub fn days(from: NaiveDate, to: NaiveDate) -> Result<Vec<String>, String> {
    if to < from {
        return Err(format!("--to {to} is before --from {from}"));
    }
    let count = (to - from).num_days() + 1;
    if count > MAX_DAYS {
        return Err(format!("{count} days asked; at most {MAX_DAYS} at once"));
    }
    Ok(from.iter_days().take_while(|d| *d <= to).map(|d| d.format("%Y-%m-%d").to_string()).collect())
}

/// The key prefix of one account's day under `base` (the stack's `logs/`):
/// `logs/account=A/dt=D/`.
pub fn day_prefix(base: &str, account: &str, day: &str) -> String {
    let [account_key, dt_key, _] = &PARTITION_KEYS;
    format!("{base}{}={account}/{}={day}/", account_key.name, dt_key.name)
}

/// The account of a `logs/account=A/` prefix under `base`, as a listing by `/` returns it.
pub fn account_of_prefix<'a>(base: &str, prefix: &'a str) -> Option<&'a str> {
    let rest = prefix.strip_prefix(base)?.strip_prefix(PARTITION_KEYS[0].name)?.strip_prefix('=')?;
    Some(rest.trim_end_matches('/')).filter(|a| !a.is_empty() && !a.contains('/'))
}

/// Where one object stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectState {
    /// In a class read directly (Standard, Infrequent Access, Glacier Instant Retrieval, …).
    Readable,
    /// Archived with no restore: one is to be requested.
    Archived,
    /// A restore was requested and is under way.
    Restoring,
    /// A restored copy is readable (until it expires).
    Restored,
}

/// What an object needs, from its storage class and its restore status (ListObjectsV2 with
/// `OptionalObjectAttributes=RestoreStatus`, or HeadObject's `x-amz-restore`): whether a requested
/// restore is still in progress.
pub fn object_state(storage_class: Option<&str>, restore_in_progress: Option<bool>) -> ObjectState {
    let archived = matches!(storage_class, Some("GLACIER" | "DEEP_ARCHIVE"));
    match (archived, restore_in_progress) {
        (false, _) => ObjectState::Readable,
        (true, None) => ObjectState::Archived,
        (true, Some(true)) => ObjectState::Restoring,
        (true, Some(false)) => ObjectState::Restored,
    }
}

/// Whether a restore is in progress, from HeadObject's `x-amz-restore` header:
/// `ongoing-request="true"`, or `ongoing-request="false", expiry-date="…"` once it is done (S3 API
/// reference, HeadObject).
pub fn parse_restore_header(header: &str) -> Option<bool> {
    let start = header.find("ongoing-request=\"")? + "ongoing-request=\"".len();
    let end = header[start..].find('"')? + start;
    match &header[start..end] {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn tiers_read_as_the_cli_spells_them_and_are_sent_as_s3_spells_them() {
        assert_eq!("bulk".parse::<RestoreTier>().map(RestoreTier::as_str), Ok("Bulk"));
        assert_eq!("standard".parse::<RestoreTier>().map(restore_hours), Ok(12));
        assert!("Expedited".parse::<RestoreTier>().is_err());
    }

    #[test]
    fn a_range_names_each_day_and_is_bounded() {
        assert_eq!(days(day("2026-02-27"), day("2026-03-01")).unwrap(), ["2026-02-27", "2026-02-28", "2026-03-01"]);
        assert_eq!(days(day("2026-01-01"), day("2026-01-01")).unwrap(), ["2026-01-01"]);
        assert!(days(day("2026-01-02"), day("2026-01-01")).unwrap_err().contains("before"));
        assert!(days(day("2024-01-01"), day("2026-01-01")).unwrap_err().contains("at most 366"));
        assert_eq!(day_prefix(LOGS_PREFIX, "111111111111", "2026-01-01"), "logs/account=111111111111/dt=2026-01-01/");
    }

    #[test]
    fn accounts_are_read_from_their_prefixes() {
        assert_eq!(account_of_prefix(LOGS_PREFIX, "logs/account=111111111111/"), Some("111111111111"));
        assert_eq!(account_of_prefix(LOGS_PREFIX, "logs/account=unknown/"), Some("unknown"));
        assert_eq!(account_of_prefix(LOGS_PREFIX, "logs/dt=2026-01-01/"), None, "written before the account key");
        assert_eq!(account_of_prefix(LOGS_PREFIX, "logs/account=/"), None);
    }

    #[test]
    fn restore_headers_say_whether_a_restore_is_under_way_and_until_when() {
        assert_eq!(parse_restore_header(r#"ongoing-request="true""#), Some(true));
        assert_eq!(
            parse_restore_header(r#"ongoing-request="false", expiry-date="Fri, 01 Jan 2027 00:00:00 GMT""#),
            Some(false)
        );
        assert_eq!(parse_restore_header("garbage"), None);
        assert_eq!(parse_restore_header(r#"ongoing-request="maybe""#), None);
    }

    #[test]
    fn only_archived_objects_need_a_restore() {
        assert_eq!(object_state(Some("STANDARD_IA"), None), ObjectState::Readable);
        assert_eq!(object_state(Some("GLACIER_IR"), None), ObjectState::Readable);
        assert_eq!(object_state(None, None), ObjectState::Readable, "no class: Standard");
        assert_eq!(object_state(Some("DEEP_ARCHIVE"), None), ObjectState::Archived);
        assert_eq!(object_state(Some("GLACIER"), Some(true)), ObjectState::Restoring);
        assert_eq!(object_state(Some("DEEP_ARCHIVE"), Some(false)), ObjectState::Restored);
    }
}
