//! The one table that turns a Ronglian status code into what a sender should do
//! (`docs/provider.md` §3). The worker only `match`es on the [`Action`].

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Transient: the same request with a fresh timestamp, after the usual backoff.
    Retry,
    /// Too fast for this one number: retry this job, but not before `after`.
    Backoff { after: Duration },
    /// The whole account is going too fast: every worker pauses (`worker.pause_ms`), then
    /// this job is retried.
    PauseAll,
    /// Will keep failing until a person changes something (number, template, account).
    GiveUp,
    /// `160054`: our own `reqId` was already accepted today, so an earlier attempt got through.
    AlreadyAccepted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    pub reason: &'static str,
}

use Action::*;

/// 160038 is a per-number window set by the platform; apps commonly wait at least 60 s.
const SAME_NUMBER_TOO_FAST: Action = Backoff {
    after: Duration::from_secs(60),
};

/// Inclusive code ranges, first match wins. Codes absent from the table give up: retrying an
/// unknown error blindly could spam a user or burn the account's quota.
const TABLE: &[(u32, u32, Action, &str)] = &[
    (160000, 160000, Retry, "provider system error"),
    (111000, 111099, Retry, "provider internal error"),
    (160001, 160010, Retry, "channel busy"),
    (111111, 111111, PauseAll, "too many concurrent requests"),
    (160016, 160016, PauseAll, "channel rate limit"),
    (160050, 160050, Retry, "generic send failure"),
    (160063, 160064, Retry, "generic send failure"),
    (
        160038,
        160038,
        SAME_NUMBER_TOO_FAST,
        "too frequent for this number",
    ),
    (
        160039,
        160041,
        GiveUp,
        "daily limit for this number and template",
    ),
    (112314, 112314, GiveUp, "daily limit for this number"),
    (160015, 160015, GiveUp, "limit for this number"),
    (160021, 160022, GiveUp, "limit for this number"),
    (160042, 160042, GiveUp, "invalid number"),
    (112316, 112316, GiveUp, "invalid number"),
    (160013, 160013, GiveUp, "invalid number"),
    (160044, 160045, GiveUp, "missing or duplicate number"),
    (160048, 160048, GiveUp, "too many numbers"),
    (160034, 160034, GiveUp, "number blacklisted"),
    (160051, 160051, GiveUp, "number unsubscribed"),
    (160068, 160068, GiveUp, "number blacklisted"),
    (160072, 160074, GiveUp, "number blacklisted"),
    (112317, 112317, GiveUp, "number blacklisted"),
    (160032, 160032, GiveUp, "template invalid or not found"),
    (112311, 112311, GiveUp, "template missing"),
    (112323, 112323, GiveUp, "template missing or not approved"),
    (160043, 160043, GiveUp, "template does not match the app"),
    (160036, 160036, GiveUp, "unknown template type"),
    (160057, 160057, GiveUp, "template id not numeric"),
    (
        113302,
        113302,
        GiveUp,
        "test template to an unregistered number",
    ),
    (160030, 160031, GiveUp, "request body empty or unparseable"),
    (160052, 160052, GiveUp, "bad datas"),
    (160055, 160055, GiveUp, "reqId too long"),
    (160033, 160033, GiveUp, "banned words"),
    (160049, 160049, GiveUp, "sensitive words"),
    (160037, 160037, GiveUp, "content too long"),
    (160035, 160035, GiveUp, "content empty"),
    (
        160054,
        160054,
        AlreadyAccepted,
        "duplicate reqId: already accepted",
    ),
    (
        111109,
        111109,
        GiveUp,
        "sig check failed (wrong auth token?)",
    ),
    (
        111101,
        111105,
        GiveUp,
        "authorization or sig missing or malformed",
    ),
    (111107, 111108, GiveUp, "authorization malformed"),
    (111110, 111110, GiveUp, "wrong API version"),
    (111113, 111113, GiveUp, "authorization malformed"),
    // A fresh timestamp is taken for every attempt, so a retry is harmless; the attempt
    // limit stops a real clock problem from retrying forever.
    (
        111106,
        111106,
        Retry,
        "authorization timestamp expired (clock or time zone?)",
    ),
    (111142, 111142, GiveUp, "account balance too low"),
    (111128, 111143, GiveUp, "account problem"),
    (111169, 111182, GiveUp, "app id unknown or disabled"),
    (112303, 112303, GiveUp, "app problem"),
    (112305, 112305, GiveUp, "app problem"),
    (112310, 112310, GiveUp, "app not online"),
    (160053, 160053, GiveUp, "caller IP not whitelisted"),
    (160014, 160014, GiveUp, "channel balance too low"),
];

pub fn classify(code: &str) -> Verdict {
    let Ok(n) = code.parse::<u32>() else {
        return Verdict {
            action: GiveUp,
            reason: "unrecognised status code",
        };
    };
    TABLE
        .iter()
        .find(|(lo, hi, _, _)| (*lo..=*hi).contains(&n))
        .map(|&(_, _, action, reason)| Verdict { action, reason })
        .unwrap_or(Verdict {
            action: GiveUp,
            reason: "unknown status code",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per code (or range end) named in the provider's error table.
    #[test]
    fn every_documented_code_has_its_action() {
        let rows: &[(&str, Action)] = &[
            ("160000", Retry),
            ("111000", Retry),
            ("111001", Retry),
            ("111050", Retry),
            ("111099", Retry),
            ("160001", Retry),
            ("160005", Retry),
            ("160010", Retry),
            ("111111", PauseAll),
            ("160016", PauseAll),
            ("160050", Retry),
            ("160063", Retry),
            ("160064", Retry),
            ("160038", SAME_NUMBER_TOO_FAST),
            ("160039", GiveUp),
            ("160040", GiveUp),
            ("160041", GiveUp),
            ("112314", GiveUp),
            ("160021", GiveUp),
            ("160022", GiveUp),
            ("160015", GiveUp),
            ("160042", GiveUp),
            ("112316", GiveUp),
            ("160013", GiveUp),
            ("160044", GiveUp),
            ("160045", GiveUp),
            ("160048", GiveUp),
            ("160034", GiveUp),
            ("160051", GiveUp),
            ("160068", GiveUp),
            ("160072", GiveUp),
            ("160073", GiveUp),
            ("160074", GiveUp),
            ("112317", GiveUp),
            ("160032", GiveUp),
            ("112311", GiveUp),
            ("112323", GiveUp),
            ("160043", GiveUp),
            ("160036", GiveUp),
            ("160057", GiveUp),
            ("113302", GiveUp),
            ("160031", GiveUp),
            ("160030", GiveUp),
            ("160052", GiveUp),
            ("160055", GiveUp),
            ("160033", GiveUp),
            ("160049", GiveUp),
            ("160037", GiveUp),
            ("160035", GiveUp),
            ("160054", AlreadyAccepted),
            ("111109", GiveUp),
            ("111101", GiveUp),
            ("111102", GiveUp),
            ("111103", GiveUp),
            ("111104", GiveUp),
            ("111105", GiveUp),
            ("111107", GiveUp),
            ("111108", GiveUp),
            ("111113", GiveUp),
            ("111110", GiveUp),
            ("111106", Retry),
            ("111128", GiveUp),
            ("111138", GiveUp),
            ("111139", GiveUp),
            ("111140", GiveUp),
            ("111141", GiveUp),
            ("111143", GiveUp),
            ("111169", GiveUp),
            ("111181", GiveUp),
            ("111182", GiveUp),
            ("112303", GiveUp),
            ("112305", GiveUp),
            ("112310", GiveUp),
            ("160053", GiveUp),
            ("111142", GiveUp),
            ("160014", GiveUp),
        ];
        for (code, expected) in rows {
            assert_eq!(classify(code).action, *expected, "code {code}");
        }
    }

    #[test]
    fn unknown_and_garbage_codes_give_up() {
        assert_eq!(classify("999999").action, GiveUp);
        assert_eq!(classify("").action, GiveUp);
        assert_eq!(classify("abc").action, GiveUp);
    }

    #[test]
    fn balance_has_its_own_reason() {
        assert_eq!(classify("111142").reason, "account balance too low");
    }
}
