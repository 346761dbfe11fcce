//! Where fleetlog's embedded metrics are written. CloudWatch's Embedded Metric Format is an AWS
//! interface without an API call: Lambda captures the function's stdout lines and CloudWatch turns
//! each EMF line into metrics. The lines themselves are built by `fleetlog_core::metrics`.

use fleetlog_core::metrics::{Counter, emf_gauges_line, emf_line};

/// Where embedded-metric lines go. Lambda turns stdout lines into metrics; a local run inside the
/// CLI keeps stdout for the CLI's own output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricsOutput {
    #[default]
    Stdout,
    Stderr,
}

impl MetricsOutput {
    /// Writes the counts, timed now, as one EMF line (nothing when all are zero). EMF must be a log
    /// line of its own.
    pub fn emit(self, counts: &[(Counter, u64)]) {
        if let Some(line) = emf_line(counts, chrono::Utc::now().timestamp_millis()) {
            self.write(&line);
        }
    }

    /// Writes levels (a sweep's counts of the fleet), zeros included.
    pub fn emit_gauges(self, levels: &[(Counter, u64)]) {
        self.write(&emf_gauges_line(levels, chrono::Utc::now().timestamp_millis()));
    }

    /// Writes lines built elsewhere (the access windows' EMF and contributor lines), one each.
    pub fn emit_lines(self, lines: &[String]) {
        for line in lines {
            self.write(line);
        }
    }

    fn write(self, line: &str) {
        match self {
            MetricsOutput::Stdout => println!("{line}"),
            MetricsOutput::Stderr => eprintln!("{line}"),
        }
    }
}
