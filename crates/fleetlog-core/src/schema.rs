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

/// Data columns, in record order.
pub const COLUMNS: &[Column] = &[
    column("event_id", "string"),
    column("timestamp", "bigint"),
    column("time", "string"),
    column("account", "string"),
    column("region", "string"),
    column("log_group", "string"),
    column("log_stream", "string"),
    column("instance_id", "string"),
    column("source", "string"),
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
    column("win_event_id", "int"),
    column("win_channel", "string"),
    column("win_provider", "string"),
    column("attributes", "map<string,string>"),
];

/// Partition keys: the `dt`/`hour` the Firehose shape returns as `metadata.partitionKeys`, which the
/// delivery stream's dynamic partitioning turns into `dt=YYYY-MM-DD/hour=HH/` prefixes.
pub const PARTITION_KEYS: [Column; 2] = [column("dt", "string"), column("hour", "string")];

/// How a gzip member begins (RFC 1952): the subscription payloads are gzip, and the stored objects
/// are when the delivery stream compresses them, so readers tell the two kinds apart by it.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
