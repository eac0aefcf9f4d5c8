//! `flytesecret-conformance`: checks an implementation of Flyte's Secret Service against the
//! golden naming vectors (`naming`) and the behavioural contract (`service`).

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use flytesecret_conformance::report::{CaseResult, Outcome, Report};
use flytesecret_conformance::{adapter, service, vectors};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "flytesecret-conformance",
    version,
    about = "Conformance checks for Flyte Secret Service implementations"
)]
struct Cli {
    #[command(subcommand)]
    suite: Suite,
}

#[derive(Subcommand)]
enum Suite {
    /// Drive a naming adapter (conformance/PROTOCOL.md) with the golden vectors.
    Naming {
        /// The adapter command, run with `sh -c`.
        #[arg(long = "impl")]
        implementation: String,
        /// Directory of golden *.jsonl files.
        #[arg(long, default_value_os_t = vectors::golden_dir())]
        golden: PathBuf,
        /// Write a report: `--report json FILE` or `--report junit FILE`.
        #[arg(long, num_args = 2, value_names = ["FORMAT", "FILE"])]
        report: Option<Vec<String>>,
    },
    /// Drive a live endpoint through the behavioural contract.
    Service {
        /// The service URL, e.g. http://127.0.0.1:8093.
        #[arg(long)]
        endpoint: String,
        /// grpc, connect-proto or connect-json.
        #[arg(long, default_value = "connect-proto")]
        protocol: service::Protocol,
        /// A kubeconfig for checking the Kubernetes objects each write leaves behind.
        #[arg(long, requires = "namespace")]
        kubeconfig: Option<PathBuf>,
        /// The secrets namespace (with --kubeconfig).
        #[arg(long)]
        namespace: Option<String>,
        /// strict (this project's default validation) or go (exact Go behaviour).
        #[arg(long, default_value = "strict")]
        profile: service::Profile,
        /// Case ids expected to fail, one per line.
        #[arg(long)]
        known_failing: Option<PathBuf>,
        /// The case file (defaults to the shipped cases).
        #[arg(long, default_value_os_t = service::cases_file())]
        cases: PathBuf,
        /// Write a report: `--report json FILE` or `--report junit FILE`.
        #[arg(long, num_args = 2, value_names = ["FORMAT", "FILE"])]
        report: Option<Vec<String>>,
    },
}

fn write_report(report: &Report, suite: &str, spec: &Option<Vec<String>>) -> Result<()> {
    let Some(spec) = spec else { return Ok(()) };
    let (format, file) = (&spec[0], &spec[1]);
    let text = match format.as_str() {
        "json" => report.to_json(),
        "junit" => report.to_junit(suite),
        other => bail!("unknown report format {other:?}: use json or junit"),
    };
    std::fs::write(file, text).with_context(|| format!("writing {file}"))
}

fn finish(report: &Report, suite: &str) -> ExitCode {
    for c in &report.cases {
        match c.outcome {
            Outcome::Failed => println!(
                "FAIL {} (spec {}): {}",
                c.id,
                c.spec,
                c.message.as_deref().unwrap_or("")
            ),
            Outcome::UnexpectedPass => println!(
                "FAIL {} (spec {}): listed as known failing, but passed",
                c.id, c.spec
            ),
            Outcome::ExpectedFailure => println!(
                "known failing {}: {}",
                c.id,
                c.message.as_deref().unwrap_or("")
            ),
            Outcome::Passed => {}
        }
    }
    let (passed, failed) = report.summary();
    println!("{suite}: {passed} passed, {failed} failed");
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.suite {
        Suite::Naming {
            implementation,
            golden,
            report,
        } => {
            let records = vectors::load_jsonl_dir(&golden)?;
            let mismatches = adapter::check_adapter(&implementation, &records)?;
            let failed: std::collections::HashSet<&str> =
                mismatches.iter().map(|m| m.origin.as_str()).collect();
            let mut r = Report::default();
            for l in &records {
                let failure = failed.contains(l.origin.as_str());
                r.cases.push(CaseResult {
                    id: l.origin.clone(),
                    spec: l.record.op.clone(),
                    outcome: if failure {
                        Outcome::Failed
                    } else {
                        Outcome::Passed
                    },
                    message: None,
                });
            }
            for m in mismatches.iter().take(50) {
                println!("FAIL {m}");
            }
            if mismatches.len() > 50 {
                println!("... and {} more", mismatches.len() - 50);
            }
            write_report(&r, "naming", &report)?;
            let (passed, failed) = r.summary();
            println!("naming: {passed} passed, {failed} failed");
            Ok(if r.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Suite::Service {
            endpoint,
            protocol,
            kubeconfig,
            namespace,
            profile,
            known_failing,
            cases,
            report,
        } => {
            let kube = match kubeconfig {
                Some(path) => Some((
                    service::kube_client(&path).await?,
                    namespace.unwrap_or_default(),
                )),
                None => None,
            };
            let opts = service::Options {
                endpoint,
                protocol,
                profile,
                kube,
                known_failing: match known_failing {
                    Some(p) => service::load_known_failing(&p)?,
                    None => Default::default(),
                },
                cases: service::load_cases(&cases)?,
            };
            let r = service::run(&opts).await?;
            write_report(&r, "service", &report)?;
            Ok(finish(&r, "service"))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flytesecret-conformance: {e:#}");
            ExitCode::from(2)
        }
    }
}
