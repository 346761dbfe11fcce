//! The record schema as data: the Glue table in infra/ and the CLI's local query engine are checked
//! against (or built from) this table, and a test checks every field the ETL writes is in it. It
//! lives in core so the CLI reads it without linking the ETL.

/// One column of the `logs` table, typed as Glue/Hive spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub glue_type: &'static str,
}

const fn column(name: &'static str, glue_type: &'static str) -> Column {
    Column { name, glue_type }
}

/// The Glue database and table the stack creates and `fleetlog query` uses.
pub const DATABASE: &str = "fleetlog";
pub const TABLE: &str = "logs";

/// Data columns, in record order. Each record also carries its `account`, which the table reads as
/// a partition key (Glue allows no column to be both).
pub const COLUMNS: &[Column] = &[
    column("event_id", "string"),
    column("timestamp", "bigint"),
    column("time", "string"),
    column("region", "string"),
    column("log_group", "string"),
    column("log_stream", "string"),
    column("instance_id", "string"),
    column("source", "string"),
    column("application", "string"),
    column("format", "string"),
    column("message", "string"),
    column("part", "int"),
    column("parts", "int"),
    column("severity", "string"),
    column("host", "string"),
    column("program", "string"),
    column("pid", "string"),
    column("client_ip", "string"),
    column("http_method", "string"),
    column("http_path", "string"),
    column("http_status", "int"),
    column("http_bytes", "bigint"),
    column("user_agent", "string"),
    column("latency_ms", "bigint"),
    column("win_event_id", "int"),
    column("win_channel", "string"),
    column("win_provider", "string"),
    column("country", "string"),
    column("waf_action", "string"),
    column("waf_rule", "string"),
    column("event_source", "string"),
    column("event_name", "string"),
    column("principal_arn", "string"),
    column("error_code", "string"),
    column("aws_region", "string"),
    column("edge_location", "string"),
    column("edge_result", "string"),
    column("attributes", "map<string,string>"),
];

/// Partition keys, outermost first: the source account (the envelope's `owner`) and the `dt`/`hour`
/// of the batch's first event, which the Firehose shape returns as `metadata.partitionKeys` and the
/// delivery stream's dynamic partitioning turns into `account=…/dt=YYYY-MM-DD/hour=HH/` prefixes.
pub const PARTITION_KEYS: [Column; 3] = [column("account", "string"), column("dt", "string"), column("hour", "string")];

/// Where the records are kept in the log bucket, each object under its partition's path.
pub const LOGS_PREFIX: &str = "logs/";

/// The `account` partition of records whose envelope names no account ID (twelve digits). Firehose
/// sends a record whose partition key is missing to its error prefix; this keeps it queryable.
pub const UNKNOWN_ACCOUNT: &str = "unknown";

/// Whether `text` is an AWS account ID: twelve digits.
pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// The `account` partition value for an envelope's `owner`: the owner when it is an account ID, so
/// every value is a safe key segment.
pub fn account_partition(owner: &str) -> &str {
    if is_account_id(owner) { owner } else { UNKNOWN_ACCOUNT }
}

/// One partition's values, in [`PARTITION_KEYS`] order.
pub type Partition = [String; 3];

/// The key path of `partition` under [`LOGS_PREFIX`]: `account=…/dt=…/hour=…/`.
pub fn partition_path(partition: &Partition) -> String {
    PARTITION_KEYS.iter().zip(partition).map(|(key, value)| format!("{}={value}/", key.name)).collect()
}

/// An object's partition, from its key's `name=value` segments, when it has all three (objects
/// written before the account key was added have none, and are read by their records' own values).
pub fn key_partition(key: &str) -> Option<Partition> {
    let segment = |column: &Column| {
        key.split('/').find_map(|part| part.strip_prefix(column.name)?.strip_prefix('=')).map(str::to_owned)
    };
    let [account, dt, hour] = &PARTITION_KEYS;
    Some([segment(account)?, segment(dt)?, segment(hour)?])
}

/// How a gzip member begins (RFC 1952): the subscription payloads are gzip, and the stored objects
/// are when the delivery stream compresses them, so readers tell the two kinds apart by it.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_partition_is_the_owner_when_it_is_an_account_id() {
        assert_eq!(account_partition("123456789012"), "123456789012");
        for owner in ["", "CloudwatchLogs", "12345678901", "1234567890123", "12345678901a", "../../etc"] {
            assert_eq!(account_partition(owner), UNKNOWN_ACCOUNT, "{owner:?}");
        }
    }

    #[test]
    fn partition_paths_are_read_back_from_keys() {
        let partition: Partition = ["123456789012".into(), "2026-11-30".into(), "07".into()];
        let path = partition_path(&partition);
        assert_eq!(path, "account=123456789012/dt=2026-11-30/hour=07/");
        assert_eq!(
            key_partition(&format!("{LOGS_PREFIX}{path}fleetlog-1-2026-11-30-07-00-00-abc.gz")),
            Some(partition.clone())
        );
        assert_eq!(
            key_partition("/home/me/hour=07/dt=2026-11-30/account=123456789012/x"),
            Some(partition),
            "any order"
        );
        assert_eq!(key_partition("logs/dt=2026-11-30/hour=07/x.gz"), None, "all or nothing");
        assert_eq!(key_partition("logs/xaccount=1/xdt=1/hours=2/x.gz"), None);
    }
}
