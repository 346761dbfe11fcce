//! The bench binary is what `bench/compare.py` and the README's figures run: it must answer a corpus
//! event exactly as the Lambda's transform does, and report in the form compare.py reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use fleetlog_etl::Payload;
use fleetlog_etl::firehose::{Context, transform_for};
use fleetlog_etl::records::Destination;

fn bench(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetlog-etl-bench"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn transform_answers_a_corpus_event_as_the_lambda_does_and_reports_rates() {
    let corpus = bench(&["corpus", "--bytes", "40000", "--seed", "3"], b"");
    assert!(corpus.status.success(), "{}", stderr(&corpus));
    let payload: Payload = serde_json::from_slice(&corpus.stdout).unwrap();
    let event = payload.into_firehose_event().expect("a Firehose event");
    assert!(event.records.len() > 1, "a batch of records");
    // The bench's applications: the corpus's instances dealt round four.
    let applications = fleetlog_etl_bench::applications(&event, 4);
    let context = Context { region: "us-east-1", applications: &applications, access_metrics: true };
    let out = transform_for(&Destination::Table, &event, &context);
    let expected = serde_json::to_vec(&out.response).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("event.json");
    std::fs::write(&path, &corpus.stdout).unwrap();
    let from_file = bench(&["transform", "--invocations", "3", path.to_str().unwrap()], b"");
    assert!(from_file.status.success(), "{}", stderr(&from_file));
    assert_eq!(from_file.stdout, expected, "the response is the transform's");
    // The lines compare.py reads: `… [\d.]+ s = (\d+) MB/s in, (\d+) MB/s delivered`.
    let report = stderr(&from_file);
    for line in
        ["transform: first invocation ", "transform: warm, median of 2 more: ", "transform: warm, best of 2 more: "]
    {
        let rest = report.lines().find_map(|l| l.strip_prefix(line)).unwrap_or_else(|| panic!("{line:?} in {report}"));
        assert!(rest.contains(" s = ") && rest.contains(" MB/s in, ") && rest.contains(" MB/s delivered"), "{rest}");
    }

    let windows =
        report.lines().find(|l| l.contains("access requests in windows")).unwrap_or_else(|| panic!("{report}"));
    assert!(windows.contains(&format!("transform: {} access requests", out.windows.requests())), "{windows}");
    assert!(out.windows.requests() > 0, "the corpus holds access lines");

    let from_stdin = bench(&["transform"], &corpus.stdout);
    assert_eq!(from_stdin.stdout, expected, "stdin reads the same event");
    let off = bench(&["transform", "--no-access-metrics", path.to_str().unwrap()], b"");
    assert_eq!(off.stdout, expected, "the records are the same without windows");
    assert!(!stderr(&off).contains("access requests in windows"), "{}", stderr(&off));

    let core = bench(&["core", path.to_str().unwrap()], b"");
    assert!(core.status.success(), "{}", stderr(&core));
    assert!(stderr(&core).contains(" MB/s in"), "{}", stderr(&core));
}

#[test]
fn bad_input_and_bad_flags_are_refused_with_a_reason() {
    let not_an_event = bench(&["transform"], br#"{"hello": 1}"#);
    assert_eq!(not_an_event.status.code(), Some(1));
    assert!(stderr(&not_an_event).contains("not a Firehose event"), "{}", stderr(&not_an_event));

    let missing = bench(&["core", "/nonexistent/event.json"], b"");
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("/nonexistent/event.json"), "{}", stderr(&missing));

    for args in [&["transform", "--invocations", "0"][..], &["transform", "--bogus"], &["nothing"]] {
        let refused = bench(args, b"");
        assert_eq!(refused.status.code(), Some(2), "{args:?}: usage errors exit 2");
        assert!(stderr(&refused).starts_with("error: ") && stderr(&refused).contains("--help"), "{}", stderr(&refused));
    }
}
