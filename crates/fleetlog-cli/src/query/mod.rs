//! `fleetlog query`: SQL over the log table, on Athena ([`athena`]) or (`--local`) on an embedded
//! engine, Apache DataFusion, over the same JSON objects, with the same table name and columns: the
//! objects to read ([`objects`]), the records' schema and partition columns ([`schema`]), which
//! objects a query's partition filters leave ([`pruning`]), and the table the engine scans
//! ([`table`]).

mod athena;
mod objects;
mod pruning;
mod schema;
mod table;

use serde_json::{Map, Value, json};

use fleetlog_core::schema::TABLE;

use crate::output::{Report, Table};

pub use athena::{AthenaOptions, AthenaStats, human_bytes, run_athena};
pub use objects::{LocalObjects, LocalSource};
pub use schema::arrow_schema;
pub use table::{ObjectsTable, local_session, run_local};

/// Queries shipped with fleetlog; infra/ creates the same ones as Athena named queries.
pub const NAMED_QUERIES: &[(&str, &str)] = &[
    ("errors-per-instance", include_str!("../../../../infra/queries/errors-per-instance.sql")),
    ("failed-ssh-logins", include_str!("../../../../infra/queries/failed-ssh-logins.sql")),
    ("top-5xx-paths", include_str!("../../../../infra/queries/top-5xx-paths.sql")),
    ("windows-security-events", include_str!("../../../../infra/queries/windows-security-events.sql")),
    ("log-volume", include_str!("../../../../infra/queries/log-volume.sql")),
    ("waf-blocks", include_str!("../../../../infra/queries/waf-blocks.sql")),
    ("cloudfront-edges", include_str!("../../../../infra/queries/cloudfront-edges.sql")),
    ("cloudtrail-access-denied", include_str!("../../../../infra/queries/cloudtrail-access-denied.sql")),
    ("access-windows", include_str!("../../../../infra/queries/access-windows.sql")),
    ("top-clients", include_str!("../../../../infra/queries/top-clients.sql")),
];

/// The SQL of a named query, or the argument itself.
pub fn resolve_sql(sql_or_name: &str) -> &str {
    NAMED_QUERIES.iter().find(|(name, _)| *name == sql_or_name).map_or(sql_or_name, |(_, sql)| sql)
}

/// `sql` reading only `accounts`' records: `logs` becomes a common table expression over the table
/// restricted to them (`database.logs`, which the expression's name does not hide), so any query,
/// named or not, needs no edit, and both engines prune the other accounts' partitions. Athena's
/// injected projection (`SourceAccountIds` `*`) needs this equality on every query.
pub fn for_accounts(sql: &str, database: &str, accounts: &[String]) -> String {
    if accounts.is_empty() {
        return sql.to_owned();
    }
    let listed: Vec<String> = accounts.iter().map(|a| format!("'{}'", a.replace('\'', "''"))).collect();
    let restricted = format!(
        "{TABLE} AS (SELECT * FROM \"{}\".\"{TABLE}\" WHERE account IN ({}))",
        database.replace('"', "\"\""),
        listed.join(", ")
    );
    // After the leading comments (a named query's description), where the statement starts.
    let mut start = 0;
    for line in sql.split_inclusive('\n') {
        let text = line.trim_start();
        if !(text.is_empty() || text.starts_with("--")) {
            start += line.len() - text.len();
            break;
        }
        start += line.len();
    }
    let (comments, statement) = sql.split_at(start.min(sql.len()));
    let mut words = statement.splitn(3, char::is_whitespace);
    let with = words.next().is_some_and(|w| w.eq_ignore_ascii_case("WITH"));
    if !with {
        return format!("{comments}WITH {restricted}\n{statement}");
    }
    // Its own WITH list gains the restricted table first (after RECURSIVE, where it is one).
    let keyword_end = match words.next() {
        Some(word) if word.eq_ignore_ascii_case("RECURSIVE") => statement.find(word).map_or(4, |at| at + word.len()),
        _ => 4,
    };
    let (keyword, rest) = statement.split_at(keyword_end);
    format!("{comments}{keyword} {restricted},{rest}")
}

/// The first comment line of a named query.
pub fn description(sql: &str) -> &str {
    sql.lines().next().and_then(|l| l.strip_prefix("-- ")).unwrap_or_default()
}

pub fn list_named() -> Report {
    let mut table = Table::new(&["name", "what it answers"]);
    let mut items = Vec::new();
    for (name, sql) in NAMED_QUERIES {
        table.row(vec![(*name).to_owned(), description(sql).to_owned()]);
        items.push(json!({ "name": name, "description": description(sql), "sql": sql }));
    }
    Report { json: json!({ "queries": items }), tables: vec![table], notes: Vec::new() }
}

/// Columns and rows as text, the same for both engines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl QueryResult {
    pub fn report(self, stats: Value, notes: Vec<String>) -> Report {
        let mut table = Table::new(&[]);
        table.header = self.columns.clone();
        table.rows = self.rows.iter().map(|r| r.iter().map(crate::output::cell).collect()).collect();
        let rows: Vec<Value> = self
            .rows
            .into_iter()
            .map(|r| Value::Object(self.columns.iter().cloned().zip(r).collect::<Map<String, Value>>()))
            .collect();
        Report { json: json!({ "columns": self.columns, "rows": rows, "stats": stats }), tables: vec![table], notes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_queries_resolve_and_describe_themselves() {
        assert!(resolve_sql("log-volume").contains("GROUP BY instance_id, source"));
        assert_eq!(resolve_sql("SELECT 1"), "SELECT 1");
        for (name, sql) in NAMED_QUERIES {
            assert!(!description(sql).is_empty(), "{name} has no description line");
        }
    }

    #[test]
    fn queries_for_accounts_read_the_table_restricted_to_them() {
        let accounts = ["111111111111".to_owned(), "222222222222".to_owned()];
        let restricted =
            r#"logs AS (SELECT * FROM "fleetlog"."logs" WHERE account IN ('111111111111', '222222222222'))"#;
        assert_eq!(for_accounts("SELECT 1 FROM logs", "fleetlog", &[]), "SELECT 1 FROM logs");
        assert_eq!(
            for_accounts("SELECT 1 FROM logs", "fleetlog", &accounts),
            format!("WITH {restricted}\nSELECT 1 FROM logs")
        );
        assert_eq!(
            for_accounts("-- what\n  select 1 from logs", "fleetlog", &accounts),
            format!("-- what\n  WITH {restricted}\nselect 1 from logs")
        );
        assert_eq!(
            for_accounts("with x AS (SELECT 1) SELECT * FROM x", "fleetlog", &accounts),
            format!("with {restricted}, x AS (SELECT 1) SELECT * FROM x")
        );
        assert_eq!(
            for_accounts("WITH RECURSIVE x(n) AS (SELECT 1) SELECT n FROM x", "fleetlog", &accounts),
            format!("WITH RECURSIVE {restricted}, x(n) AS (SELECT 1) SELECT n FROM x")
        );
        let quoted = for_accounts("SELECT 1", "my\"db", &["o'x".to_owned()]);
        assert!(quoted.contains(r#"FROM "my""db"."logs" WHERE account IN ('o''x')"#), "{quoted}");
        for (name, sql) in NAMED_QUERIES {
            assert!(for_accounts(sql, "fleetlog", &accounts).contains(restricted), "{name}");
        }
    }
}
