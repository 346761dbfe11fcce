//! What a command prints: tables for people, JSON (or CSV) for scripts. Every command builds one
//! [`Report`]; `--output` picks the rendering.

use std::io::Write;

use clap::ValueEnum;
use comfy_table::{ContentArrangement, Table as Grid, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// Tables and sentences for people.
    #[default]
    Table,
    /// One JSON document on stdout, for scripts.
    Json,
    /// The main table as CSV (header row first).
    Csv,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub title: Option<String>,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self { title: None, header: header.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    pub fn titled(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

/// A command's result: `json` is the machine-readable form; `tables` and `notes` the human one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub json: Value,
    pub tables: Vec<Table>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn print(&self, format: OutputFormat, out: &mut dyn Write) -> std::io::Result<()> {
        match format {
            OutputFormat::Json => {
                serde_json::to_writer_pretty(&mut *out, &self.json)?;
                writeln!(out)
            }
            OutputFormat::Csv => {
                let Some(table) = self.tables.first() else { return Ok(()) };
                let mut writer = csv::Writer::from_writer(out);
                writer.write_record(&table.header)?;
                for row in &table.rows {
                    writer.write_record(row)?;
                }
                writer.flush()
            }
            OutputFormat::Table => {
                for table in &self.tables {
                    if let Some(title) = &table.title {
                        writeln!(out, "{title}")?;
                    }
                    if table.rows.is_empty() {
                        writeln!(out, "(none)")?;
                        continue;
                    }
                    let mut grid = Grid::new();
                    grid.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
                    grid.set_header(&table.header);
                    for row in &table.rows {
                        grid.add_row(row);
                    }
                    writeln!(out, "{grid}")?;
                }
                for note in &self.notes {
                    writeln!(out, "{note}")?;
                }
                Ok(())
            }
        }
    }
}

/// A JSON value as a table cell: strings bare, null empty, the rest as JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A bar counting `len` pieces of long work on stderr, drawn only when `show` and the work is long
/// enough to wait for (more than 20 pieces); hidden otherwise, so callers count unconditionally.
pub fn progress_bar(len: usize, message: String, show: bool) -> ProgressBar {
    let progress = ProgressBar::new(len as u64);
    if show && len > 20 {
        progress.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        progress.set_message(message);
    } else {
        progress.set_draw_target(ProgressDrawTarget::hidden());
    }
    progress
}

/// A spinner with a changing message on stderr, for waits of unknown length (hidden when stderr is
/// not a terminal).
pub fn spinner(message: &str) -> ProgressBar {
    let spinner = ProgressBar::new_spinner().with_message(message.to_owned());
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    spinner
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_json_is_the_json_value() {
        let mut table = Table::new(&["a", "b"]);
        table.row(vec!["x,y".into(), "plain".into()]);
        let report = Report { json: serde_json::json!({"k": 1}), tables: vec![table], notes: vec![] };
        let mut csv = Vec::new();
        report.print(OutputFormat::Csv, &mut csv).unwrap();
        assert_eq!(String::from_utf8(csv).unwrap(), "a,b\n\"x,y\",plain\n");
        let mut json = Vec::new();
        report.print(OutputFormat::Json, &mut json).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&json).unwrap(), serde_json::json!({"k": 1}));
    }
}
