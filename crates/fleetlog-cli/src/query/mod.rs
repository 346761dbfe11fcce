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
];

/// The SQL of a named query, or the argument itself.
pub fn resolve_sql(sql_or_name: &str) -> &str {
    NAMED_QUERIES.iter().find(|(name, _)| *name == sql_or_name).map_or(sql_or_name, |(_, sql)| sql)
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
}
