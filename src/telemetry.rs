//! Logging: human-readable on a terminal, JSON lines when `SMSQ_LOG_FORMAT=json`. Level from
//! `RUST_LOG` (default `info`; `warn` for `smsq dev`, whose own output tells the story). Nothing smsq logs contains a code or a credential.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

/// Where the lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Straight to stderr, in order with whatever else the command prints (the CLI).
    Direct,
    /// To stderr from a thread of its own (`smsq api`, `smsq worker`). A write to a file or a
    /// pipe can stall (the disk's writeback, a slow reader): it then holds up that thread
    /// only, not a runtime thread serving requests or sends. Nothing is dropped: when 128k
    /// lines wait, a logging call waits too. Lines still queued are written when the process
    /// ends, except after a `kill -9`.
    Background,
}

/// Keeps the background writer going; dropping it writes out what is queued.
#[must_use = "dropping the guard stops the background writer"]
pub struct LogGuard {
    _writer: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// `default_level` applies when `RUST_LOG` is not set.
pub fn init(default_level: &str, writer: Writer) -> LogGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Colour only for a person at a terminal: a file, a pipe or a process manager's log
    // gets plain text (and NO_COLOR, https://no-color.org, turns it off there too).
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let (make, guard) = match writer {
        Writer::Direct => (BoxMakeWriter::new(std::io::stderr), None),
        Writer::Background => {
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(false)
                .thread_name("smsq-log")
                .finish(std::io::stderr());
            (BoxMakeWriter::new(writer), Some(guard))
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(make);
    let json = std::env::var("SMSQ_LOG_FORMAT").is_ok_and(|f| f == "json");
    // try_init: tests and `smsq dev` may call this more than once.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    LogGuard { _writer: guard }
}

/// This host's name, for names and trails operators read (`host-pid-random` consumers,
/// `cli:<user>@<host>`); `host` when the system will not say.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned())
}
