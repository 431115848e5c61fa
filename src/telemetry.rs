//! Logging: human-readable on a terminal, JSON lines when `SMSQ_LOG_FORMAT=json`. Level from
//! `RUST_LOG` (default `info`; `warn` for `smsq dev`, whose own output tells the story). Nothing smsq logs contains a code or a credential.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `default_level` applies when `RUST_LOG` is not set.
pub fn init(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Colour only for a person at a terminal: a file, a pipe or a process manager's log
    // gets plain text (and NO_COLOR, https://no-color.org, turns it off there too).
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let json = std::env::var("SMSQ_LOG_FORMAT").is_ok_and(|f| f == "json");
    // try_init: tests and `smsq dev` may call this more than once.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
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
