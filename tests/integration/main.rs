//! Integration tests against the AWS API emulator on 127.0.0.1 (one emulator process per test).

mod accounts;
mod enrollment;
mod etl;
mod infra;
mod objects;
