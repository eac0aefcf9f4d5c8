//! The `flytesecret` command line.

use clap::{Parser, Subcommand};
use flytesecret::consumption::{DEFAULT_ENV_PREFIX, PodLabels};
use flytesecret::{naming_adapter, resolve};
use std::io;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "flytesecret",
    version,
    about = "Flyte's Secret Service, in Rust"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Speak the naming-conformance JSON Lines protocol on stdin/stdout (conformance/PROTOCOL.md).
    Naming,
    /// Show which Kubernetes Secrets and data keys a task pod tries for a secret, and how it is delivered.
    Resolve {
        /// The secret's key (its name in the Secret Service).
        #[arg(long)]
        key: String,
        /// The pod's project label.
        #[arg(long, short = 'p')]
        project: String,
        /// The pod's domain label.
        #[arg(long, short = 'd')]
        domain: String,
        /// The pod's organization label (the executor always stamps `flyte`).
        #[arg(long, default_value = "flyte")]
        org: String,
        /// The task's explicit env_var for this secret, if any.
        #[arg(long, default_value = "")]
        env_var: String,
        /// The webhook's secretEnvVarPrefix.
        #[arg(long, default_value = DEFAULT_ENV_PREFIX)]
        env_prefix: String,
        /// The secrets namespace the webhook reads.
        #[arg(long, short = 'n', default_value = "flyte")]
        namespace: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Naming => {
            let stdin = io::stdin().lock();
            let stdout = io::stdout().lock();
            match naming_adapter::serve(stdin, stdout) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("flytesecret naming: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Resolve {
            key,
            project,
            domain,
            org,
            env_var,
            env_prefix,
            namespace,
            json,
        } => {
            let query = resolve::Query {
                labels: PodLabels {
                    organization: &org,
                    project: &project,
                    domain: &domain,
                },
                key: &key,
                env_var: &env_var,
                env_prefix: &env_prefix,
                namespace: &namespace,
            };
            let rendered = if json {
                resolve::render_json(&query)
            } else {
                resolve::render_text(&query)
            };
            match rendered {
                Ok(text) => {
                    print!("{text}");
                    if json {
                        println!();
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("flytesecret resolve: a task pod would be refused: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
