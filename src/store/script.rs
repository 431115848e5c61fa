//! Typed calls of the Lua scripts. Each script has one struct, declared with [`script!`]:
//! its fields are the script's KEYS and then its ARGV, in the order the script binds them,
//! and the call pushes them in that order, so the Rust side has one list per script. The
//! script's header (its `local name = KEYS[n]` and `ARGV[n]` lines) is read by a test and
//! checked against those lists, so the two sides cannot drift.

use redis::Script;

/// Shared helpers: each script carries those it uses.
const LIB: &str = include_str!("lib.lua");

pub(crate) fn load(body: &str) -> Script {
    Script::new(&format!("{}\n{body}", helpers_for(body)))
}

/// The helpers of `lib.lua` that `body` uses, and those they use, in the library's order.
/// Redis runs a script's whole text on every call, and each helper it carries is a closure
/// made again each time: the whole library cost about 4.5 µs a call (an empty script with it
/// against one without, `INFO commandstats`). A helper is a paragraph of `lib.lua` (blank
/// lines apart) that defines names at its start of line (`local function x`, `local X =`).
fn helpers_for(body: &str) -> String {
    let paragraphs: Vec<(&str, Vec<&str>)> = LIB
        .split("\n\n")
        .map(|p| p.trim_end_matches('\n'))
        .map(|p| (p, defined(p)))
        .filter(|(_, names)| !names.is_empty())
        .collect();
    let mut wanted = vec![false; paragraphs.len()];
    loop {
        let mut grew = false;
        for (i, (_, names)) in paragraphs.iter().enumerate() {
            let used = |text: &str| names.iter().any(|n| uses(text, n));
            let by_others = || {
                let mut others = paragraphs.iter().zip(&wanted).enumerate();
                others.any(|(j, ((p, _), w))| *w && j != i && used(p))
            };
            if !wanted[i] && (used(body) || by_others()) {
                wanted[i] = true;
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    let kept = paragraphs.iter().zip(wanted).filter(|(_, w)| *w);
    kept.map(|((p, _), _)| *p).collect::<Vec<_>>().join("\n\n")
}

/// The names a paragraph of `lib.lua` defines at the start of its lines.
fn defined(paragraph: &str) -> Vec<&str> {
    let mut names = Vec::new();
    for line in paragraph.lines() {
        if let Some(rest) = line.strip_prefix("local function ") {
            names.extend(rest.split('(').next());
        } else if let Some((lhs, _)) = line
            .strip_prefix("local ")
            .and_then(|l| l.split_once(" = "))
        {
            names.extend(lhs.split(", "));
        }
    }
    names
}

/// `text` names `name` as a whole word.
fn uses(text: &str, name: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    text.match_indices(name).any(|(at, _)| {
        !word(text[..at].chars().next_back()) && !word(text[at + name.len()..].chars().next())
    })
}

/// What one script's struct declares, for the header test.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct Header {
    pub name: &'static str,
    pub source: &'static str,
    pub keys: &'static [&'static str],
    pub argv: &'static [&'static str],
    /// The name of the variadic tail of ARGV (the script reads `ARGV[n..]`), if any.
    pub rest: Option<&'static str>,
}

/// Declares a script's call: `struct Name<'a> = include_str!("x.lua"); keys { … } argv { … }`
/// with an optional `rest { name: type }` for a variadic ARGV tail. Keys are `String`s;
/// argument types are anything `ToRedisArgs`.
macro_rules! script {
    (@rest) => { None };
    (@rest $rest:ident) => { Some(stringify!($rest)) };
    (
        $(#[$meta:meta])*
        struct $name:ident $(<$lt:lifetime>)? = $source:expr;
        keys { $($key:ident),* $(,)? }
        argv { $($arg:ident : $ty:ty),* $(,)? }
        $(rest { $rest:ident : $rest_ty:ty })?
    ) => {
        $(#[$meta])*
        pub(crate) struct $name $(<$lt>)? {
            $(pub $key: String,)*
            $(pub $arg: $ty,)*
            $(pub $rest: $rest_ty,)?
        }

        impl $(<$lt>)? $name $(<$lt>)? {
            #[cfg(test)]
            pub(crate) const HEADER: $crate::store::script::Header = $crate::store::script::Header {
                name: stringify!($name),
                source: $source,
                keys: &[$(stringify!($key)),*],
                argv: &[$(stringify!($arg)),*],
                rest: script!(@rest $($rest)?),
            };

            pub(crate) async fn call<T: redis::FromRedisValue>(
                &self,
                conn: &mut $crate::store::Conn,
            ) -> Result<T, $crate::store::StoreError> {
                static SCRIPT: std::sync::LazyLock<redis::Script> =
                    std::sync::LazyLock::new(|| $crate::store::script::load($source));
                let mut call = SCRIPT.prepare_invoke();
                $(call.key(&self.$key);)*
                $(call.arg(&self.$arg);)*
                $(call.arg(&self.$rest);)?
                Ok(call.invoke_async(conn).await?)
            }
        }
    };
}
pub(crate) use script;

/// KEYS names, ARGV names and the variadic tail's name, as a script declares them.
#[cfg(test)]
type Declared = (Vec<String>, Vec<String>, Option<String>);

#[cfg(test)]
type Bound = std::collections::BTreeMap<usize, String>;

/// A script's header as the script itself declares it: KEYS and ARGV names by index, and
/// the variadic tail (`-- ARGV[n..]: name`).
#[cfg(test)]
fn declared(source: &str) -> Result<Declared, String> {
    let (mut keys, mut argv, mut rest) = (Bound::new(), Bound::new(), None);
    for line in source.lines() {
        if let Some(tail) = line.strip_prefix("-- ARGV[")
            && let Some((from, name)) = tail.split_once("..]: ")
        {
            let from = from.parse::<usize>().map_err(|e| e.to_string())?;
            rest = Some((from, name.trim().to_owned()));
        } else if let Some((names, values)) = line
            .strip_prefix("local ")
            .and_then(|l| l.split_once(" = "))
            .filter(|(_, v)| v.contains("KEYS[") || v.contains("ARGV["))
        {
            bind(line, names, values, &mut keys, &mut argv)?;
        }
    }
    let argv = in_order(argv, "ARGV")?;
    if let Some((from, _)) = &rest
        && *from != argv.len() + 1
    {
        let named = argv.len();
        return Err(format!(
            "the ARGV tail starts at {from}, after {named} named"
        ));
    }
    Ok((in_order(keys, "KEYS")?, argv, rest.map(|(_, n)| n)))
}

/// Records one header line's `name = KEYS[n]` / `ARGV[n]` bindings.
#[cfg(test)]
fn bind(
    line: &str,
    names: &str,
    values: &str,
    keys: &mut Bound,
    argv: &mut Bound,
) -> Result<(), String> {
    let names: Vec<&str> = names.split(", ").collect();
    let values: Vec<&str> = values.split(", ").collect();
    if names.len() != values.len() {
        let (n, v) = (names.len(), values.len());
        return Err(format!("{line:?}: {n} names for {v} values"));
    }
    for (name, value) in names.into_iter().zip(values) {
        let (table, at) = if let Some(at) = value.find("KEYS[") {
            (&mut *keys, at + 5)
        } else if let Some(at) = value.find("ARGV[") {
            (&mut *argv, at + 5)
        } else {
            return Err(format!("{line:?}: {value} is neither KEYS nor ARGV"));
        };
        let index: usize = value[at..]
            .split(']')
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("{line:?}: unreadable index in {value}"))?;
        if table.insert(index, name.to_owned()).is_some() {
            return Err(format!("{line:?}: index {index} bound twice"));
        }
    }
    Ok(())
}

/// The names of `1..=n`, or the first index left unbound.
#[cfg(test)]
fn in_order(table: Bound, what: &str) -> Result<Vec<String>, String> {
    for (i, n) in table.keys().enumerate() {
        if *n != i + 1 {
            return Err(format!("{what}[{}] is not bound", i + 1));
        }
    }
    Ok(table.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every script smsq runs, by its struct.
    fn all() -> Vec<Header> {
        let mut all = Vec::new();
        all.extend(crate::store::queue::SCRIPTS);
        all.extend(crate::store::intake::SCRIPTS);
        all.extend(crate::store::records::SCRIPTS);
        all.extend(crate::store::hooks::SCRIPTS);
        all
    }

    #[test]
    fn a_script_carries_the_helpers_it_uses_and_theirs_only() {
        assert_eq!(helpers_for("return 1"), "");
        let record = helpers_for("record(job_key)");
        for needed in [
            "local function record(",
            "local function with_event(",
            "local HISTORY_MAX",
            "local function clip(",
            "local function event(",
            "local LETTER",
            "local TERMINAL",
        ] {
            assert!(record.contains(needed), "{needed} missing");
        }
        assert!(!record.contains("local function tally("));
        assert!(uses("x = record(k)", "record") && !uses("recorded", "record"));
        assert!(!uses("a_record", "record") && !uses("records", "record"));
        // Every definition of the library is a helper some script can carry.
        let every = LIB.lines().filter(|l| !l.starts_with("--"));
        let every = every.collect::<Vec<_>>().join("\n");
        assert_eq!(helpers_for(&every).len(), {
            let p: Vec<&str> = LIB
                .split("\n\n")
                .map(|p| p.trim_end_matches('\n'))
                .filter(|p| !defined(p).is_empty())
                .collect();
            p.join("\n\n").len()
        });
        // Each script's helpers end with a whole function or table.
        for h in all() {
            let lib = helpers_for(h.source);
            assert!(
                lib.is_empty() || lib.ends_with("end") || lib.ends_with('}'),
                "{}",
                h.name
            );
        }
    }

    #[test]
    fn each_script_binds_the_keys_and_arguments_its_struct_passes() {
        for h in all() {
            let (keys, argv, rest) =
                declared(h.source).unwrap_or_else(|e| panic!("{}: {e}", h.name));
            assert_eq!(keys, h.keys, "{}: KEYS", h.name);
            assert_eq!(argv, h.argv, "{}: ARGV", h.name);
            assert_eq!(rest.as_deref(), h.rest, "{}: the ARGV tail", h.name);
            // Past its header a script names what it bound, not a position.
            let body: Vec<&str> = h
                .source
                .lines()
                .filter(|l| !l.starts_with("local ") && !l.starts_with("--"))
                .filter(|l| l.contains("KEYS[") || l.contains("ARGV["))
                .collect();
            let tail_only = body
                .iter()
                .all(|l| h.rest.is_some() && !l.contains("KEYS[") && l.contains("ARGV[i]"));
            assert!(
                tail_only,
                "{}: positional KEYS/ARGV past the header: {body:?}",
                h.name
            );
        }
    }

    #[test]
    fn every_lua_file_is_some_structs_script() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
        let mut files = Vec::new();
        for sub in ["queue", "intake", "records", "hooks"] {
            for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "lua") {
                    files.push(std::fs::read_to_string(path).unwrap());
                }
            }
        }
        let sources: Vec<&str> = all().iter().map(|h| h.source).collect();
        assert_eq!(
            files.len(),
            sources.len(),
            "a .lua file without a struct, or the other way"
        );
        for file in &files {
            assert!(
                sources.contains(&file.as_str()),
                "a script no struct loads:\n{file}"
            );
        }
    }

    /// The scripts' `TERMINAL` table and `JobStatus::is_terminal` are one list, written
    /// twice because one side is Lua: this keeps them the same.
    #[test]
    fn the_scripts_terminal_statuses_are_the_rusts() {
        let table = LIB
            .split_once("local TERMINAL = {")
            .and_then(|(_, rest)| rest.split_once('}'))
            .map(|(table, _)| table)
            .expect("lib.lua declares TERMINAL");
        let mut lua: Vec<&str> = table
            .split(',')
            .filter_map(|entry| entry.split_once('='))
            .map(|(name, value)| {
                assert_eq!(value.trim(), "true", "{table}");
                name.trim()
            })
            .collect();
        lua.sort_unstable();
        let mut rust: Vec<&str> = crate::domain::JobStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .map(|s| s.as_str())
            .collect();
        rust.sort_unstable();
        assert_eq!(lua, rust);
    }

    #[test]
    fn the_header_reader_refuses_gaps_and_miscounts() {
        assert!(declared("local a, b = KEYS[1], KEYS[3]").is_err());
        assert!(declared("local a, b = KEYS[1]").is_err());
        assert!(declared("local a = ARGV[1]\n-- ARGV[3..]: ids").is_err());
        let (k, a, r) =
            declared("local a = KEYS[1]\nlocal n = tonumber(ARGV[1])\n-- ARGV[2..]: ids").unwrap();
        assert_eq!(
            (k, a, r),
            (vec!["a".into()], vec!["n".into()], Some("ids".into()))
        );
    }
}
