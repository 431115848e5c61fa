//! The Lua scripts, each prefixed with the shared helpers of `lua/lib.lua`.

use std::sync::LazyLock;

use redis::Script;

const LIB: &str = include_str!("lua/lib.lua");

fn load(body: &str) -> Script {
    Script::new(&format!("{LIB}\n{body}"))
}

pub(crate) struct Scripts {
    pub issue_code: Script,
    pub enqueue_message: Script,
    pub ip_reserve: Script,
    pub ip_release: Script,
    pub verify: Script,
    pub consume: Script,
    pub begin: Script,
    pub settle: Script,
    pub poison: Script,
    pub promote: Script,
    pub rate: Script,
    pub pause: Script,
    pub reap: Script,
    pub claim_own: Script,
    pub touch: Script,
    pub replay: Script,
    pub report: Script,
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    issue_code: load(include_str!("lua/issue_code.lua")),
    enqueue_message: load(include_str!("lua/enqueue_message.lua")),
    ip_reserve: load(include_str!("lua/ip_reserve.lua")),
    ip_release: load(include_str!("lua/ip_release.lua")),
    verify: load(include_str!("lua/verify.lua")),
    consume: load(include_str!("lua/consume.lua")),
    begin: load(include_str!("lua/begin.lua")),
    settle: load(include_str!("lua/settle.lua")),
    poison: load(include_str!("lua/poison.lua")),
    promote: load(include_str!("lua/promote.lua")),
    rate: load(include_str!("lua/rate.lua")),
    pause: load(include_str!("lua/pause.lua")),
    reap: load(include_str!("lua/reap.lua")),
    claim_own: load(include_str!("lua/claim_own.lua")),
    touch: load(include_str!("lua/touch.lua")),
    replay: load(include_str!("lua/replay.lua")),
    report: load(include_str!("lua/report.lua")),
});
