//! `insurancectl`: the command-line client for back-office staff and operators.
//!
//! - `send`: any command to `insurance.commands`, and its reply (DESIGN.md §3).
//! - `parked list | show | replay`: the parking lots of DESIGN.md §4.
//! - `queues depth`: how many messages wait in queues.
//! - `freeze plan | order | list | show | lift | extend | cancel | status` and `receipt show`:
//!   freeze orders on `insurance.control` and every service's answer (DESIGN.md §5).
//! - `subscriber provision | show | remove`: external subscribers' queues, broker users and
//!   permissions (DESIGN.md §2, §6), through the RabbitMQ management API; `provision
//!   --replay-from` gives a new one the archived events first ([`replay`]).
//! - `accounts apply`: each service's Postgres role, owning its schema ([`accounts`]).
//! - `topology export`: the broker topology and grants of a deployment, from the services'
//!   code (`k8s/base/topology.yaml`, `deploy/compose/rabbitmq/definitions.json`).
//!
//! The binary only parses arguments and prints a [`Report`]; [`run`] does the work and every
//! text it prints comes from [`render`], so both are tested without a terminal.

pub mod accounts;
pub mod args;
mod commands;
pub mod freeze;
pub use messaging::management;
mod outbox;
mod provisioning;
pub mod queues;
pub mod render;
pub mod replay;
pub mod subscriber;
pub mod topology;

pub use args::Cli;

use clap::Parser;
use std::io::Read;
use std::process::ExitCode;

/// The `app_id` this tool's messages carry.
pub const APP_ID: &str = "insurancectl";

/// What a run prints, and how it exits.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub stdout: String,
    pub stderr: String,
    /// 0 done, 2 the service said no (`rejected`, `suspended`), 1 anything else.
    pub code: u8,
}

impl Report {
    pub(crate) fn out(stdout: String) -> Self {
        Report {
            stdout,
            ..Default::default()
        }
    }
}

/// Exit code for errors that kept the tool from doing its job (arguments, input, broker).
pub const EXIT_FAILURE: u8 = 1;

/// Runs one parsed command line. `stdin` is read only for `send … -`. An `Err` means the tool
/// could not do what was asked (exit 1); its message is written for the person at the desk.
pub async fn run(cli: Cli, stdin: &mut dyn Read) -> anyhow::Result<Report> {
    commands::run(cli, stdin).await
}

/// The whole program: parse, run on a small runtime, print, exit.
pub fn main_entry() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors exit 1, not clap's 2: scripts read 2 as "the service said no".
            return ExitCode::from(if e.use_stderr() { EXIT_FAILURE } else { 0 });
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let mut stdin = std::io::stdin().lock();
    match runtime.block_on(run(cli, &mut stdin)) {
        Ok(report) => {
            print!("{}", report.stdout);
            eprint!("{}", report.stderr);
            ExitCode::from(report.code)
        }
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The error and its causes on one line. lapin's errors repeat their source in their own
/// message, so a cause already said is not said again.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if out.contains(&msg) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&msg);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Repeats(std::io::Error);
    impl std::fmt::Display for Repeats {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "IO error: {}", self.0)
        }
    }
    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn error_text_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let e = anyhow::Error::new(Repeats(io)).context("cannot reach the broker");
        assert_eq!(
            error_text(&e),
            "cannot reach the broker: IO error: Connection refused"
        );
    }
}
