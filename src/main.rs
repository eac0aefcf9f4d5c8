//! The `flytesecret` command line.

use clap::{Parser, Subcommand};
use flytesecret::consumption::{DEFAULT_ENV_PREFIX, PodLabels};
use flytesecret::kubeapi::{Durability, Engine};
use flytesecret::{naming_adapter, resolve, server};
use std::io;
use std::process::ExitCode;

/// jemalloc rather than glibc's malloc: a request allocates and frees a few hundred blocks,
/// some over glibc's per-thread cache size, and glibc's malloc/free/consolidate were ~12% of the
/// server's CPU under load (perf). With jemalloc a GetSecret costs 9% fewer instructions, idle
/// RSS stays at 15 MiB and 10k stored secrets open at 31 MiB peak (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once at its start (the `_RJEM_MALLOC_CONF` variable still overrides
/// them). Its thread caches are trimmed once a thread has allocated this many bytes since the
/// last trim: at the default of 64 KiB a GetSecret, which allocates some 20 KiB, paid for a
/// trim every third request (~900 instructions a request, 1.8% of a Connect GetSecret under
/// callgrind). The caches stay bounded by their per-size slot counts either way (`ci/measure-rss`:
/// idle 15 MiB either way, peak under its load 37 MiB against 36).
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_OPTIONS: &u8 = &b"tcache_gc_incr_bytes:1048576\0"[0];

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

/// Shorthand flags for the embedded engine and logging; every `--secret.*` key is accepted too.
#[derive(clap::Args, Default)]
struct ServeFlags {
    /// Data directory of the embedded Kubernetes store (secret.embedded.dataDir).
    #[arg(long = "data-dir", value_name = "DIR")]
    data_dir: Option<String>,
    /// Keep the embedded Kubernetes store in memory only (secret.embedded.ephemeral).
    #[arg(long)]
    ephemeral: bool,
    /// Also serve the embedded Kubernetes API over HTTP on this address, for kubectl
    /// (secret.embedded.kubeApiListen).
    #[arg(long = "kube-api-listen", value_name = "ADDR")]
    kube_api_listen: Option<String>,
    /// Write a kubeconfig for the embedded Kubernetes API to this file
    /// (secret.embedded.writeKubeconfig).
    #[arg(long = "write-kubeconfig", value_name = "FILE")]
    write_kubeconfig: Option<String>,
    /// kube-apiserver's static token file for the embedded Kubernetes API
    /// (secret.embedded.tokenAuthFile).
    #[arg(long = "token-auth-file", value_name = "FILE")]
    token_auth_file: Option<String>,
    /// Log format: text or json (secret.log.format).
    #[arg(long = "log-format", value_name = "FORMAT")]
    log_format: Option<String>,
    /// FOR TESTS ONLY: serve the unauthenticated fault-injection endpoint on the embedded
    /// Kubernetes API (secret.embedded.testFaultInjection).
    #[arg(long = "test-fault-injection")]
    test_fault_injection: bool,
}

impl ServeFlags {
    fn pairs(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = [
            ("secret.embedded.dataDir", &self.data_dir),
            ("secret.embedded.kubeApiListen", &self.kube_api_listen),
            ("secret.embedded.writeKubeconfig", &self.write_kubeconfig),
            ("secret.log.format", &self.log_format),
            ("secret.embedded.tokenAuthFile", &self.token_auth_file),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_owned(), v.clone())))
        .collect();
        if self.ephemeral {
            out.push(("secret.embedded.ephemeral".to_owned(), "true".to_owned()));
        }
        if self.test_fault_injection {
            out.push((
                "secret.embedded.testFaultInjection".to_owned(),
                "true".to_owned(),
            ));
        }
        out
    }
}

/// Takes every `--secret.KEY VALUE` / `--secret.KEY=VALUE` out of the arguments: the Go
/// service's flag spelling, for any key of the configuration schema (checked when loaded).
/// `(key, value)` pairs from `--secret.*` flags.
type KeyValues = Vec<(String, String)>;

fn split_secret_flags(args: Vec<String>) -> Result<(KeyValues, Vec<String>), String> {
    let mut pairs = Vec::new();
    let mut rest = Vec::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let Some(flag) = arg.strip_prefix("--").filter(|f| f.starts_with("secret.")) else {
            rest.push(arg);
            continue;
        };
        match flag.split_once('=') {
            Some((k, v)) => pairs.push((k.to_owned(), v.to_owned())),
            None => {
                let value = it.next().ok_or_else(|| format!("--{flag} needs a value"))?;
                pairs.push((flag.to_owned(), value));
            }
        }
    }
    Ok((pairs, rest))
}

#[derive(Subcommand)]
enum Command {
    /// Run the Secret Service (gRPC, gRPC-Web and Connect on one port).
    #[command(after_help = flytesecret::config::flags_help())]
    Serve {
        /// Config file (YAML with a `secret:` section); a `*` in the file name globs.
        #[arg(long)]
        config: Option<String>,
        #[command(flatten)]
        flags: ServeFlags,
    },
    /// Print the effective configuration (files, then environment, then flags; credentials
    /// redacted) and exit; non-zero with the error `serve` would give on a bad file or value.
    #[command(after_help = flytesecret::config::flags_help())]
    Config {
        /// Config file (YAML with a `secret:` section); a `*` in the file name globs.
        #[arg(long)]
        config: Option<String>,
        #[command(flatten)]
        flags: ServeFlags,
    },
    /// Serve only the embedded Kubernetes Secrets API (for kubectl and tests).
    KubeApi(KubeApiArgs),
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

async fn serve(
    config: Option<String>,
    flags: ServeFlags,
    secret_flags: Vec<(String, String)>,
) -> anyhow::Result<()> {
    let files = flytesecret::config::config_files(config.as_deref())?;
    let mut pairs = flags.pairs();
    pairs.extend(secret_flags);
    let cfg = flytesecret::config::load(&files, |k| std::env::var(k).ok(), &pairs)?;
    let _telemetry = flytesecret::telemetry::init(
        cfg.log_format == flytesecret::config::LogFormat::Json,
        flytesecret::telemetry::otlp_endpoint(&cfg.otlp_endpoint),
    )?;
    let backend = server::backend(&cfg).await?;
    let host = server::bind_host(&cfg, backend.engine.is_some());
    let listener = tokio::net::TcpListener::bind((host.as_str(), cfg.port))
        .await
        .map_err(|e| anyhow::anyhow!("binding {host}:{}: {e}", cfg.port))?;
    let addr = listener.local_addr()?;
    let guard = guard(&cfg, &backend)?;
    let liveness = backend
        .engine
        .clone()
        .map(|engine| Box::new(move || engine.unrecoverable()) as server::Liveness);
    let app = server::App::new(
        server::service(&cfg, &backend, guard.audit.clone()),
        cfg.request_timeout,
        liveness,
    );
    let limits = cfg.limits.clone();
    if let (Some(k), Some(engine)) = (backend.kube_api_addr, &backend.engine) {
        let scheme = flytesecret::kubeapi::http_face::scheme(engine);
        println!("flytesecret: embedded Kubernetes API on {scheme}://{k}");
    }
    if !addr.ip().is_loopback() && !guard.auth.is_enabled() {
        tracing::warn!(%addr, "serving on a non-loopback address with no authentication: anyone who reaches this port can read and write every secret (configure secret.auth and secret.server.tls)");
    }
    let scheme = if guard.tls.is_some() { "https" } else { "http" };
    println!("flytesecret: serving flyteidl2.secret.SecretService on {scheme}://{addr}");
    tracing::info!(%addr, namespace = %cfg.namespace, "serving");
    server::serve(app, listener, limits, guard, shutdown_signal()).await
}

/// TLS, authentication and the audit log, from the configuration.
fn guard(
    cfg: &flytesecret::config::Config,
    backend: &server::Backend,
) -> anyhow::Result<server::Guard> {
    use anyhow::Context as _;
    let tls = cfg
        .tls
        .files()
        .map(|_| server::tls::TlsAcceptor::new(&cfg.tls))
        .transpose()
        .context("secret.server.tls")?;
    let audit = cfg
        .audit_path
        .as_deref()
        .map(|p| {
            flytesecret::audit::AuditLog::open(p)
                .with_context(|| format!("opening the audit log {p}"))
        })
        .transpose()?
        .map(std::sync::Arc::new);
    let auth = flytesecret::auth::Authenticator::from_config(cfg, &backend.client)?;
    if cfg.auth.policy.is_some() && !auth.is_enabled() {
        tracing::warn!(
            "secret.auth.policy is set but no authentication is configured: every caller is anonymous and the policy denies them all"
        );
    }
    Ok(server::Guard { tls, auth, audit })
}

/// The `kube-api` command's arguments.
#[derive(clap::Args)]
struct KubeApiArgs {
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: String,
    #[arg(long, conflicts_with = "ephemeral")]
    data_dir: Option<std::path::PathBuf>,
    #[arg(long)]
    ephemeral: bool,
    /// Key file (32 random bytes, base64) sealing the store's records at rest.
    #[arg(long, value_name = "FILE", conflicts_with = "ephemeral")]
    encryption_key_file: Option<std::path::PathBuf>,
    /// Repair a store that refuses to start: back up --data-dir, truncate its log at the
    /// first damaged record, check that it opens, and exit.
    #[arg(long, requires = "data_dir")]
    repair: bool,
    #[arg(long)]
    write_kubeconfig: Option<std::path::PathBuf>,
    /// Namespace the written kubeconfig selects.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// FOR TESTS ONLY: serve the unauthenticated fault-injection endpoint.
    #[arg(long)]
    test_fault_injection: bool,
    /// kube-apiserver's static token file (`token,user,uid,"group1,group2"`): requests need
    /// one of its bearer tokens, and TokenReviews answer for them.
    #[arg(long, value_name = "FILE")]
    token_auth_file: Option<std::path::PathBuf>,
}

async fn kube_api(args: KubeApiArgs) -> anyhow::Result<()> {
    let KubeApiArgs {
        listen,
        data_dir,
        ephemeral,
        encryption_key_file,
        write_kubeconfig,
        namespace,
        test_fault_injection,
        token_auth_file,
        repair: _,
    } = args;
    let _telemetry = flytesecret::telemetry::init(false, None)?;
    let durability = match (ephemeral, data_dir) {
        (true, _) => Durability::Memory,
        (false, Some(dir)) => Durability::on_disk(dir, encryption_key_file),
        (false, None) => {
            anyhow::bail!("give --data-dir DIR, or --ephemeral for a memory-only store")
        }
    };
    let engine = Engine::open(&durability).map_err(|e| match &durability {
        Durability::Directory(dir) | Durability::Encrypted { dir, .. } => {
            anyhow::anyhow!("opening the Kubernetes store in {}: {e}", dir.display())
        }
        Durability::Memory => anyhow::anyhow!("opening the in-memory Kubernetes store: {e}"),
    })?;
    engine.ensure_namespace(&namespace);
    if let Some(path) = &token_auth_file {
        engine
            .set_token_file(
                flytesecret::kubeapi::tokens::TokenFile::load(path)
                    .map_err(|e| anyhow::anyhow!("token file {e}"))?,
            )
            .map_err(|e| anyhow::anyhow!("TLS for the Kubernetes API: {e}"))?;
    }
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    if let Some(path) = write_kubeconfig {
        flytesecret::kubeapi::http_face::write_kubeconfig(&path, addr, &namespace, &engine)
            .map_err(|e| anyhow::anyhow!("writing kubeconfig {}: {e}", path.display()))?;
    }
    let scheme = flytesecret::kubeapi::http_face::scheme(&engine);
    println!("flytesecret: Kubernetes Secrets API on {scheme}://{addr}");
    flytesecret::kubeapi::http_face::serve(
        engine,
        listener,
        server::Limits::default(),
        test_fault_injection,
        shutdown_signal(),
    )
    .await;
    Ok(())
}

fn print_config(
    config: Option<String>,
    flags: ServeFlags,
    secret_flags: Vec<(String, String)>,
) -> ExitCode {
    let mut pairs = flags.pairs();
    pairs.extend(secret_flags);
    let rendered = flytesecret::config::config_files(config.as_deref()).and_then(|files| {
        flytesecret::config::render_effective(&files, |k| std::env::var(k).ok(), &pairs)
    });
    match rendered {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("flytesecret: {e}");
            ExitCode::FAILURE
        }
    }
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
    let (secret_flags, args) = match split_secret_flags(std::env::args().collect()) {
        Ok(split) => split,
        Err(e) => {
            eprintln!("flytesecret: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    if !secret_flags.is_empty()
        && !matches!(cli.command, Command::Serve { .. } | Command::Config { .. })
    {
        eprintln!("flytesecret: --secret.* flags only apply to `serve` and `config`");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Serve { config, flags } => run_async(serve(config, flags, secret_flags)),
        Command::Config { config, flags } => print_config(config, flags, secret_flags),
        Command::KubeApi(KubeApiArgs {
            data_dir: Some(dir),
            encryption_key_file,
            repair: true,
            ..
        }) => {
            let _telemetry = flytesecret::telemetry::init(false, None);
            match flytesecret::kubeapi::store::repair(&dir, encryption_key_file.as_deref()) {
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("flytesecret kube-api --repair: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::KubeApi(args) => run_async(kube_api(args)),
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
