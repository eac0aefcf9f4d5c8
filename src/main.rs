//! The `flytesecret` command line.

use clap::{Parser, Subcommand};
use flytesecret::consumption::{DEFAULT_ENV_PREFIX, PodLabels};
use flytesecret::kubeapi::{Durability, Engine};
use flytesecret::{naming_adapter, resolve, server};
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

/// `--secret.*` flags, spelled as in the Go service's deployment manifests.
#[derive(clap::Args, Default)]
struct SecretFlags {
    #[arg(long = "secret.server.host", value_name = "HOST")]
    host: Option<String>,
    #[arg(long = "secret.server.port", value_name = "PORT")]
    port: Option<String>,
    /// The longest any request may run (Go duration); clients may ask for less.
    #[arg(long = "secret.server.requestTimeout", value_name = "DURATION")]
    request_timeout: Option<String>,
    #[arg(long = "secret.webhookURL", value_name = "URL")]
    webhook_url: Option<String>,
    #[arg(long = "secret.kubernetes.kubeconfig", value_name = "FILE")]
    kubeconfig: Option<String>,
    #[arg(long = "secret.kubernetes.namespace", value_name = "NS")]
    namespace: Option<String>,
    #[arg(long = "secret.kubernetes.qps", value_name = "N")]
    qps: Option<String>,
    #[arg(long = "secret.kubernetes.burst", value_name = "N")]
    burst: Option<String>,
    #[arg(long = "secret.kubernetes.timeout", value_name = "DURATION")]
    timeout: Option<String>,
    #[arg(long = "secret.kubernetes.clusterName", value_name = "NAME")]
    cluster_name: Option<String>,
    /// Enforce the declared request contract on Create (default true; false = exact Go behaviour).
    #[arg(long = "secret.strictNames", value_name = "BOOL")]
    strict_names: Option<String>,
    /// Data directory of the embedded Kubernetes store.
    #[arg(
        long = "data-dir",
        alias = "secret.embedded.dataDir",
        value_name = "DIR"
    )]
    data_dir: Option<String>,
    /// Keep the embedded Kubernetes store in memory only.
    #[arg(long)]
    ephemeral: bool,
    /// Also serve the embedded Kubernetes API over HTTP on this address (for kubectl).
    #[arg(
        long = "kube-api-listen",
        alias = "secret.embedded.kubeApiListen",
        value_name = "ADDR"
    )]
    kube_api_listen: Option<String>,
    /// Write a kubeconfig for the embedded Kubernetes API to this file.
    #[arg(
        long = "write-kubeconfig",
        alias = "secret.embedded.writeKubeconfig",
        value_name = "FILE"
    )]
    write_kubeconfig: Option<String>,
    /// Export traces over OTLP/gRPC to this endpoint (off when empty).
    #[arg(long = "secret.tracing.otlpEndpoint", value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// Log format: text or json.
    #[arg(
        long = "log-format",
        alias = "secret.log.format",
        value_name = "FORMAT"
    )]
    log_format: Option<String>,
}

impl SecretFlags {
    fn pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut add = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.push((k.to_owned(), v.clone()));
            }
        };
        add("secret.server.host", &self.host);
        add("secret.server.port", &self.port);
        add("secret.server.requestTimeout", &self.request_timeout);
        add("secret.webhookURL", &self.webhook_url);
        add("secret.kubernetes.kubeconfig", &self.kubeconfig);
        add("secret.kubernetes.namespace", &self.namespace);
        add("secret.kubernetes.qps", &self.qps);
        add("secret.kubernetes.burst", &self.burst);
        add("secret.kubernetes.timeout", &self.timeout);
        add("secret.kubernetes.clusterName", &self.cluster_name);
        add("secret.strictNames", &self.strict_names);
        add("secret.embedded.dataDir", &self.data_dir);
        add("secret.embedded.kubeApiListen", &self.kube_api_listen);
        add("secret.embedded.writeKubeconfig", &self.write_kubeconfig);
        add("secret.log.format", &self.log_format);
        add("secret.tracing.otlpEndpoint", &self.otlp_endpoint);
        if self.ephemeral {
            out.push(("secret.embedded.ephemeral".to_owned(), "true".to_owned()));
        }
        out
    }
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at startup
enum Command {
    /// Run the Secret Service (gRPC, gRPC-Web and Connect on one port).
    Serve {
        /// Config file (YAML with a `secret:` section); a `*` in the file name globs.
        #[arg(long)]
        config: Option<String>,
        #[command(flatten)]
        flags: SecretFlags,
    },
    /// Serve only the embedded Kubernetes Secrets API (for kubectl and tests).
    KubeApi {
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: String,
        #[arg(long, conflicts_with = "ephemeral")]
        data_dir: Option<std::path::PathBuf>,
        #[arg(long)]
        ephemeral: bool,
        #[arg(long)]
        write_kubeconfig: Option<std::path::PathBuf>,
        /// Namespace the written kubeconfig selects.
        #[arg(long, default_value = "default")]
        namespace: String,
    },
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

/// Resolves on the first SIGTERM or SIGINT; a second one exits at once.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("flytesecret: second signal, exiting now");
        std::process::exit(1);
    });
}

async fn serve(config: Option<String>, flags: SecretFlags) -> anyhow::Result<()> {
    let files = flytesecret::config::config_files(config.as_deref())?;
    let cfg = flytesecret::config::load(&files, |k| std::env::var(k).ok(), &flags.pairs())?;
    let _telemetry = flytesecret::telemetry::init(
        cfg.log_json,
        flytesecret::telemetry::otlp_endpoint(&cfg.otlp_endpoint),
    )?;
    let backend = server::backend(&cfg).await?;
    let host = server::bind_host(&cfg, backend.engine.is_some());
    let listener = tokio::net::TcpListener::bind((host.as_str(), cfg.port))
        .await
        .map_err(|e| anyhow::anyhow!("binding {host}:{}: {e}", cfg.port))?;
    let addr = listener.local_addr()?;
    let app = server::App::new(server::service(&cfg, &backend), cfg.request_timeout);
    if let Some(k) = backend.kube_api_addr {
        println!("flytesecret: embedded Kubernetes API on http://{k}");
    }
    println!("flytesecret: serving flyteidl2.secret.SecretService on http://{addr}");
    tracing::info!(%addr, namespace = %cfg.namespace, "serving");
    server::serve(app, listener, shutdown_signal()).await
}

async fn kube_api(
    listen: String,
    data_dir: Option<std::path::PathBuf>,
    ephemeral: bool,
    write_kubeconfig: Option<std::path::PathBuf>,
    namespace: String,
) -> anyhow::Result<()> {
    let _telemetry = flytesecret::telemetry::init(false, None)?;
    let durability = match (ephemeral, data_dir) {
        (true, _) => Durability::Memory,
        (false, Some(dir)) => Durability::Directory(dir),
        (false, None) => {
            anyhow::bail!("give --data-dir DIR, or --ephemeral for a memory-only store")
        }
    };
    let engine = Engine::open(&durability)?;
    engine.ensure_namespace(&namespace);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    if let Some(path) = write_kubeconfig {
        flytesecret::kubeapi::http_face::write_kubeconfig(&path, addr, &namespace)?;
    }
    println!("flytesecret: Kubernetes Secrets API on http://{addr}");
    tokio::select! {
        r = flytesecret::kubeapi::http_face::serve(engine, listener) => r?,
        () = shutdown_signal() => {}
    }
    Ok(())
}

fn run_async(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flytesecret: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, flags } => run_async(serve(config, flags)),
        Command::KubeApi {
            listen,
            data_dir,
            ephemeral,
            write_kubeconfig,
            namespace,
        } => run_async(kube_api(
            listen,
            data_dir,
            ephemeral,
            write_kubeconfig,
            namespace,
        )),
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
