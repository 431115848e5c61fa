//! The `smsq` binary: parse the command line, load settings, run the chosen command.
//! Exit codes: 0 success, 2 bad usage or invalid configuration, 1 anything else.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use smsq::config::{ConfigError, RawConfig, Secrets, Settings};
use smsq::dev::fake::FakeOptions;
use smsq::domain::{JobId, JobStatus, Mobile, Purpose};
use smsq::ops;
use smsq::startup::{Application, StartupError};

// glibc's malloc was a quarter of the worker's CPU per send. mimalloc (built without
// transparent huge pages) cut the worker's CPU per send by 13–24 % in an A/B of the two, at
// about 25 % more peak RSS with 2,000 sends in flight. See README "Performance".
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "smsq",
    version,
    about = "SMS verification codes through a Redis stream and Ronglian TemplateSMS"
)]
struct Cli {
    /// Configuration file (default ./worker.toml when it exists).
    #[arg(long, global = true, env = "SMSQ_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// HTTP API: issue and verify codes, captchas, messages, job lookup, health.
    Api,
    /// Worker pool consuming the send stream.
    Worker {
        /// Sends in flight in this process (default: worker.concurrency).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Consumer name (default: host-pid-random).
        #[arg(long)]
        name: Option<String>,
    },
    /// Local demo: Redis, fake provider, API and worker; sends and verifies one code.
    Dev,
    /// The benchmark (`bench/run`): prints the table, writes bench/results.json.
    #[command(hide = true)]
    Bench(smsq::dev::bench::BenchOptions),
    /// A faithful TemplateSMS simulator for development and tests.
    FakeProvider(Box<FakeOptions>),
    /// A simulator of the captcha vendors (Tencent, GeeTest, Turnstile, hCaptcha) that checks
    /// signatures and secrets as they do.
    FakeCaptcha(smsq::dev::fake_captcha::FakeCaptchaOptions),
    /// Is it healthy? The queue, the workers and the limiter on one screen.
    Status {
        /// One JSON document (field names documented in the README).
        #[arg(long)]
        json: bool,
        /// Redraw every second until Ctrl-C.
        #[arg(long)]
        watch: bool,
    },
    /// One job's record and status history.
    Job {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Dead letters: why they died, send again, delete.
    #[command(subcommand)]
    Dlq(Dlq),
    /// Stop every worker's sends (the kill switch): jobs wait, no attempt is used.
    Pause {
        /// Why, for the trail `smsq status` and the dashboard show.
        #[arg(long, default_value = "paused by an operator")]
        reason: String,
        /// For how long (`90s`, `30m`, `2h`); without it, until `smsq resume`.
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        for_: Option<Duration>,
    },
    /// Let the workers send again after `smsq pause`.
    Resume,
    /// Webhooks to the app: each endpoint's queue and dead deliveries; send the dead again.
    #[command(subcommand)]
    Webhooks(Webhooks),
    /// The fleet guards: budgets used, number prefixes held; lift a prefix.
    #[command(subcommand)]
    Guard(Guard),
    /// The provider accounts, their circuits, and switching one off or on for the fleet.
    #[command(subcommand)]
    Provider(Provider),
    /// Issue a code through the same path as the API and follow it to its end (smoke test;
    /// exit 0 only if it is sent).
    Send {
        mobile: String,
        #[arg(long, default_value = "default")]
        purpose: String,
        /// Give up following after this many seconds (exit 1).
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
        /// Only issue the code; do not wait for the send.
        #[arg(long)]
        no_follow: bool,
    },
    /// Follow the fleet and write every job that finished as one JSON line (its record and
    /// history), for audit kept longer than Redis keeps records. Resumes where it stopped.
    Export {
        /// Append to this file (it is also where the follower resumes from); default stdout.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Stay this far behind the newest event, so an early delivery report is in the line.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        settle: Duration,
        /// The follower's name: where a follower to stdout keeps its cursor in Redis.
        #[arg(long, default_value = "export")]
        name: String,
        /// With nothing to resume from, start at the newest event instead of the oldest kept.
        #[arg(long)]
        from_now: bool,
        /// Go on when events after the cursor were already trimmed (else exit 1 and say so).
        #[arg(long)]
        accept_gap: bool,
    },
    /// Validate the configuration and print the effective one, secrets masked.
    Config,
}

/// Dead-letter handling; safe while workers run.
#[derive(Subcommand)]
enum Dlq {
    /// The oldest dead letters, with why they died.
    List {
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Queue dead jobs again with a fresh attempt budget (dead-letter ids or job ids).
    Replay {
        #[arg(required_unless_present = "all")]
        ids: Vec<String>,
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
    /// Delete the dead letters (asks for --yes).
    Purge {
        #[arg(long)]
        yes: bool,
    },
}

/// Webhook deliveries; safe while workers run.
#[derive(Subcommand)]
enum Webhooks {
    /// Each endpoint's backlog and counters, and its oldest dead deliveries.
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Deliver an endpoint's dead deliveries again (event ids, or --all), with a fresh
    /// retry budget.
    Replay {
        endpoint: String,
        #[arg(required_unless_present = "all")]
        ids: Vec<String>,
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

#[derive(Subcommand)]
enum Provider {
    /// Each account: kind, rate, place in the route, circuit (closed, open, half-open).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop sending through an account, fleet-wide, until `enable`.
    Disable { name: String },
    /// Send through a disabled account again.
    Enable { name: String },
}

#[derive(Subcommand)]
enum Guard {
    /// Budgets used this hour and day, and the number prefixes held.
    List {
        #[arg(long)]
        json: bool,
    },
    /// End the hold on a 7-digit number prefix (e.g. 1380013) and forget its recent counts.
    Lift { prefix: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    smsq::telemetry::init(if matches!(cli.command, Command::Dev | Command::Bench(_)) {
        "warn"
    } else {
        "info"
    });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<ConfigError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut env: HashMap<String, String> = std::env::vars().collect();
    if matches!(cli.command, Command::Dev) {
        env = smsq::dev::dev_env(env);
    }
    let path = cli.config.as_deref();
    // The simulator and the bench bring their own settings; every other command reads them.
    let load = || -> anyhow::Result<(RawConfig, Settings)> {
        let raw = RawConfig::load(path, &env)?;
        let settings = Settings::from_raw(&raw, Secrets::from_env(&env)?)?;
        Ok((raw, settings))
    };
    match cli.command {
        Command::FakeProvider(opts) => fake_provider(*opts).await,
        Command::FakeCaptcha(opts) => {
            let shutdown = smsq::shutdown::on_signal();
            let handle = smsq::dev::fake_captcha::spawn(opts.clone())
                .await
                .with_context(|| format!("cannot listen on {}", opts.listen))?;
            eprintln!("fake captcha vendors listening on {}", handle.base_url());
            shutdown.cancelled().await;
            Ok(())
        }
        Command::Bench(opts) => Ok(smsq::dev::bench::run(opts).await.map(drop)?),
        Command::Config => {
            let (raw, settings) = load()?;
            print!("{}", Settings::describe(&raw, &settings.secrets));
            Ok(())
        }
        Command::Api => api(load()?.1).await,
        Command::Worker { concurrency, name } => worker(load()?.1, concurrency, name).await,
        Command::Dev => match smsq::dev::run(load()?.1, smsq::shutdown::on_signal()).await {
            // Keep exit code 2 for a bad configuration.
            Err(smsq::dev::DevError::Config(e)) => Err(e.into()),
            Err(smsq::dev::DevError::Startup(e)) => Err(exit_code(e)),
            other => Ok(other?),
        },
        Command::Send {
            mobile,
            purpose,
            timeout_secs,
            no_follow,
        } => {
            let follow = (!no_follow).then_some(Duration::from_secs(timeout_secs));
            send(load()?.1, &mobile, &purpose, follow).await
        }
        Command::Job { id, json } => job(load()?.1, &id, json).await,
        Command::Status { json, watch } => status(load()?.1, json, watch).await,
        Command::Dlq(command) => dlq(load()?.1, command).await,
        Command::Webhooks(command) => webhooks(load()?.1, command).await,
        Command::Pause { reason, for_ } => {
            let records = application(load()?.1)?.records();
            println!("{}", ops::pause::pause(&records, &reason, for_).await?);
            Ok(())
        }
        Command::Guard(command) => {
            let app = application(load()?.1)?;
            let (store, settings) = (&app.records(), app.settings());
            let text = match command {
                Guard::List { json } => ops::guard::list(store, settings, json).await?,
                Guard::Lift { prefix } => ops::guard::lift(store, settings, &prefix).await?,
            };
            println!("{text}");
            Ok(())
        }
        Command::Provider(command) => {
            let app = application(load()?.1)?;
            let (store, settings) = (&app.records(), app.settings());
            let text = match command {
                Provider::List { json } => ops::provider::list(store, settings, json).await?,
                Provider::Disable { name } => {
                    ops::provider::switch(store, settings, &name, false).await?
                }
                Provider::Enable { name } => {
                    ops::provider::switch(store, settings, &name, true).await?
                }
            };
            println!("{text}");
            Ok(())
        }
        Command::Export {
            out,
            settle,
            name,
            from_now,
            accept_gap,
        } => {
            let records = application(load()?.1)?.records();
            let opts = ops::export::ExportOptions {
                out,
                settle,
                name,
                from_now,
                accept_gap,
            };
            let lines = ops::export::follow(&records, &opts, smsq::shutdown::on_signal()).await?;
            eprintln!("smsq export: {lines} line(s) written");
            Ok(())
        }
        Command::Resume => {
            let records = application(load()?.1)?.records();
            println!("{}", ops::pause::resume(&records).await?);
            Ok(())
        }
    }
}

async fn status(settings: Settings, json: bool, watch: bool) -> anyhow::Result<()> {
    let app = application(settings)?;
    if watch {
        ops::status::watch(
            &app.records(),
            app.settings(),
            json,
            smsq::shutdown::on_signal(),
        )
        .await;
        return Ok(());
    }
    let shown = ops::status::show(&app.records(), app.settings(), json).await;
    println!("{}", shown.text);
    anyhow::ensure!(shown.healthy, "the queue is down");
    Ok(())
}

async fn dlq(settings: Settings, command: Dlq) -> anyhow::Result<()> {
    let app = application(settings)?;
    let store = &app.records();
    match command {
        Dlq::List { limit, json } => println!("{}", ops::dlq::list(store, limit, json).await?),
        Dlq::Replay { ids, all } => {
            let done = ops::dlq::replay(store, &ids, all).await?;
            print!("{}", done.report);
            let missed = done.refused + done.not_found;
            anyhow::ensure!(
                all || missed == 0,
                "{missed} of the named dead letters not replayed"
            );
        }
        Dlq::Purge { yes } => {
            println!("{}", ops::dlq::purge(store, yes).await?);
            if !yes {
                return Err(ConfigError::new("--yes", "purge deletes; confirm with --yes").into());
            }
        }
    }
    Ok(())
}

async fn webhooks(settings: Settings, command: Webhooks) -> anyhow::Result<()> {
    let app = application(settings)?;
    let (store, settings) = (&app.records(), app.settings());
    match command {
        Webhooks::List { limit, json } => {
            println!(
                "{}",
                ops::webhooks::list(store, settings, limit, json).await?
            )
        }
        Webhooks::Replay { endpoint, ids, all } => {
            let ids = if all { Vec::new() } else { ids };
            println!(
                "{}",
                ops::webhooks::replay(store, settings, &endpoint, &ids).await?
            );
        }
    }
    Ok(())
}

fn application(settings: Settings) -> anyhow::Result<Application> {
    Application::build(settings).map_err(exit_code)
}

/// Keeps exit code 2 for a bad configuration found while wiring.
fn exit_code(e: StartupError) -> anyhow::Error {
    match e {
        StartupError::Config(e) => e.into(),
        other => other.into(),
    }
}

async fn api(settings: Settings) -> anyhow::Result<()> {
    let listen = settings.api.listen;
    smsq::metrics::install();
    let app = application(settings)?;
    app.codes().map_err(exit_code)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (api.listen)"))?;
    app.serve_api(listener, smsq::shutdown::on_signal())
        .await
        .map_err(exit_code)
}

async fn worker(
    settings: Settings,
    concurrency: Option<usize>,
    name: Option<String>,
) -> anyhow::Result<()> {
    smsq::metrics::install();
    let worker = application(settings)?
        .worker(name, concurrency)
        .map_err(exit_code)?;
    let report = worker.run(smsq::shutdown::on_signal()).await?;
    eprintln!(
        "worker stopped: {} job(s) handled, {} left pending",
        report.handled, report.abandoned
    );
    Ok(())
}

async fn fake_provider(opts: FakeOptions) -> anyhow::Result<()> {
    // Signals are ours before the port answers: a SIGTERM right after must not kill us
    // with the default action.
    let shutdown = smsq::shutdown::on_signal();
    let handle = smsq::dev::fake::spawn(opts.clone())
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    eprintln!("fake provider listening on {}", handle.base_url());
    shutdown.cancelled().await;
    handle.stop().await;
    Ok(())
}

async fn send(
    settings: Settings,
    mobile: &str,
    purpose: &str,
    follow: Option<Duration>,
) -> anyhow::Result<()> {
    let mobile = Mobile::parse(mobile).map_err(|e| ConfigError::new("MOBILE", e.to_string()))?;
    let purpose =
        Purpose::parse(purpose).map_err(|e| ConfigError::new("--purpose", e.to_string()))?;
    let app = application(settings)?;
    let codes = app.codes().map_err(exit_code)?;
    let Some(timeout) = follow else {
        let accepted = ops::send::issue(&codes, mobile.clone(), purpose).await?;
        println!(
            "queued job {} for {mobile} (expires in {} s)",
            accepted.job_id, accepted.expires_in
        );
        return Ok(());
    };
    let status =
        ops::send::send_and_follow(&codes, &app.records(), mobile, purpose, timeout).await?;
    anyhow::ensure!(
        status == JobStatus::Sent,
        "the job ended {status}, not sent"
    );
    println!("sent");
    Ok(())
}

async fn job(settings: Settings, id: &str, json: bool) -> anyhow::Result<()> {
    let id = JobId::parse(id).ok_or_else(|| ConfigError {
        key: "ID".into(),
        message: "a job id is 32 lower-case hex digits".into(),
    })?;
    let app = application(settings)?;
    let found = app
        .records()
        .job(&id)
        .await?
        .with_context(|| format!("no job {id}"))?;
    if json {
        println!(
            "{}",
            serde_json::json!({"job": found.job, "events": found.history})
        );
    } else {
        println!("{}", serde_json::to_string_pretty(&found.job)?);
        for e in found.history {
            let via = e.provider.map(|p| format!("  via {p}")).unwrap_or_default();
            println!(
                "  {}  {:<10} attempt {}{via}  {}",
                e.ts, e.status, e.attempt, e.error
            );
        }
    }
    Ok(())
}
