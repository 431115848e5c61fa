//! The tables that turn a vendor's status code into what a sender should do, one per kind
//! (`docs/provider.md` §3). The worker only `match`es on the [`Action`].

use std::time::Duration;

use super::Kind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Transient: the same request with a fresh timestamp, after the usual backoff.
    Retry,
    /// Too fast for this one number: retry this job, but not before `after`.
    Backoff { after: Duration },
    /// The whole account is going too fast: every worker pauses its sends through it
    /// (`worker.pause_ms`); the job moves to another account at once, or waits for the pause,
    /// without using an attempt.
    PauseAll,
    /// This number or this message will keep failing, through any account: the job fails.
    GiveUp,
    /// This account cannot send anything until a person fixes it (credentials, balance,
    /// signature, template, app, IP allow-list): its circuit opens and the job moves to
    /// another account without using an attempt; with no other account, it fails.
    AccountFault,
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
const RONGLIAN: &[(u32, u32, Action, &str)] = &[
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
    (
        160032,
        160032,
        AccountFault,
        "template invalid or not found",
    ),
    (112311, 112311, AccountFault, "template missing"),
    (
        112323,
        112323,
        AccountFault,
        "template missing or not approved",
    ),
    (
        160043,
        160043,
        AccountFault,
        "template does not match the app",
    ),
    (160036, 160036, AccountFault, "unknown template type"),
    (160057, 160057, AccountFault, "template id not numeric"),
    (
        113302,
        113302,
        AccountFault,
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
        AccountFault,
        "sig check failed (wrong auth token?)",
    ),
    (
        111101,
        111105,
        AccountFault,
        "authorization or sig missing or malformed",
    ),
    (111107, 111108, AccountFault, "authorization malformed"),
    (111110, 111110, AccountFault, "wrong API version"),
    (111113, 111113, AccountFault, "authorization malformed"),
    // A fresh timestamp is taken for every attempt, so a retry is harmless; the attempt
    // limit stops a real clock problem from retrying forever.
    (
        111106,
        111106,
        Retry,
        "authorization timestamp expired (clock or time zone?)",
    ),
    (111142, 111142, AccountFault, "account balance too low"),
    (111128, 111143, AccountFault, "account problem"),
    (111169, 111182, AccountFault, "app id unknown or disabled"),
    (112303, 112303, AccountFault, "app problem"),
    (112305, 112305, AccountFault, "app problem"),
    (112310, 112310, AccountFault, "app not online"),
    (160053, 160053, AccountFault, "caller IP not whitelisted"),
    (160014, 160014, AccountFault, "channel balance too low"),
];

/// Tencent Cloud SMS codes, wherever they come (`Response.Error` or the number's
/// `SendStatusSet` entry). Exact names first; a name ending in `*` is a family (a prefix).
const TENCENT: &[(&str, Action, &str)] = &[
    // A fresh timestamp is signed for every attempt, so a retry is harmless.
    (
        "AuthFailure.SignatureExpire",
        Retry,
        "signature expired (clock?)",
    ),
    (
        "InternalError.RequestTimeException",
        Retry,
        "request time off the server's (clock?)",
    ),
    (
        "InternalError.SigFieldMissing",
        AccountFault,
        "malformed request",
    ),
    (
        "InternalError.SigVerificationFail",
        AccountFault,
        "signature check failed",
    ),
    (
        "InternalError.JsonParseFail",
        AccountFault,
        "malformed request",
    ),
    (
        "InternalError.RestApiInterfaceNotExist",
        AccountFault,
        "malformed request",
    ),
    ("InternalError.*", Retry, "provider internal error"),
    ("InternalError", Retry, "provider internal error"),
    ("ServiceUnavailable", Retry, "provider unavailable"),
    ("RequestLimitExceeded*", PauseAll, "account API rate limit"),
    (
        "LimitExceeded.GlobalSmsSendingRateLimit",
        PauseAll,
        "account sending rate limit",
    ),
    (
        "LimitExceeded.PhoneNumberThirtySecondLimit",
        Backoff {
            after: Duration::from_secs(30),
        },
        "too frequent for this number",
    ),
    (
        "LimitExceeded.DeliveryFrequencyLimit",
        SAME_NUMBER_TOO_FAST,
        "too frequent for this number",
    ),
    (
        "LimitExceeded.PhoneNumberOneHourLimit",
        GiveUp,
        "hourly limit for this number",
    ),
    (
        "LimitExceeded.PhoneNumberDailyLimit",
        GiveUp,
        "daily limit for this number",
    ),
    (
        "LimitExceeded.PhoneNumberSameContentDailyLimit",
        GiveUp,
        "daily limit for this number and content",
    ),
    (
        "LimitExceeded.AppCountryOrRegionInBlacklist",
        GiveUp,
        "destination not served",
    ),
    (
        "LimitExceeded.PhoneNumberCountLimit",
        GiveUp,
        "too many numbers",
    ),
    (
        "LimitExceeded.*",
        AccountFault,
        "account daily total reached",
    ),
    (
        "UnsupportedOperation.UnsupportedRegion",
        GiveUp,
        "destination not served",
    ),
    (
        "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber",
        GiveUp,
        "mixed numbers",
    ),
    (
        "UnsupportedOperation.GlobalTemplateToChineseMainlandPhone",
        AccountFault,
        "international template for a mainland number",
    ),
    (
        "UnsupportedOperation.ChineseMainlandTemplateToGlobalPhone",
        GiveUp,
        "mainland template for an international number",
    ),
    (
        "MissingParameter.EmptyPhoneNumberSet",
        GiveUp,
        "missing number",
    ),
    (
        "InvalidParameterValue.IncorrectPhoneNumber",
        GiveUp,
        "invalid number",
    ),
    (
        "FailedOperation.PhoneNumberParseFail",
        GiveUp,
        "invalid number",
    ),
    (
        "FailedOperation.PhoneNumberInBlacklist",
        GiveUp,
        "number blacklisted",
    ),
    (
        "FailedOperation.InsufficientBalanceInSmsPackage",
        AccountFault,
        "SMS package exhausted",
    ),
    (
        "UnauthorizedOperation.ServiceSuspendDueToArrears",
        AccountFault,
        "account in arrears",
    ),
    (
        "FailedOperation.SignatureIncorrectOrUnapproved",
        AccountFault,
        "signature missing or not approved",
    ),
    (
        "FailedOperation.MissingSignatureList",
        AccountFault,
        "signature missing or not approved",
    ),
    (
        "FailedOperation.TemplateIncorrectOrUnapproved",
        AccountFault,
        "template missing or not approved",
    ),
    (
        "FailedOperation.TemplateUnapprovedOrNotExist",
        AccountFault,
        "template missing or not approved",
    ),
    (
        "FailedOperation.MissingTemplateList",
        AccountFault,
        "template missing or not approved",
    ),
    (
        "FailedOperation.TemplateIdNotExist",
        AccountFault,
        "template missing or not approved",
    ),
    // The values do not fit this account's template: its `params` are wrong, not the job.
    (
        "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
        AccountFault,
        "values do not fit the template",
    ),
    (
        "InvalidParameterValue.TemplateParameterFormatError",
        AccountFault,
        "values do not fit the template",
    ),
    (
        "InvalidParameterValue.TemplateParameterLengthLimit",
        AccountFault,
        "values do not fit the template",
    ),
    (
        "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter",
        GiveUp,
        "URL in a value",
    ),
    (
        "InvalidParameterValue.ContentLengthLimit",
        GiveUp,
        "content too long",
    ),
    (
        "InvalidParameterValue.SdkAppIdNotExist",
        AccountFault,
        "app id unknown or disabled",
    ),
    (
        "InvalidParameter.AppidAndBizId",
        AccountFault,
        "app id unknown or disabled",
    ),
    (
        "FailedOperation.ContainSensitiveWord",
        GiveUp,
        "sensitive words",
    ),
    ("InvalidParameter.DirtyWordFound", GiveUp, "sensitive words"),
    (
        "FailedOperation.MarketingSendTimeConstraint",
        GiveUp,
        "marketing hours",
    ),
    (
        "FailedOperation.FailResolvePacket",
        AccountFault,
        "malformed request",
    ),
    (
        "FailedOperation.JsonParseFail",
        AccountFault,
        "malformed request",
    ),
    ("AuthFailure*", AccountFault, "credentials refused"),
    (
        "UnauthorizedOperation*",
        AccountFault,
        "account not authorised",
    ),
    ("InvalidAction", AccountFault, "malformed request"),
    ("NoSuchVersion", AccountFault, "malformed request"),
    (
        "UnsupportedRegion",
        AccountFault,
        "region not served (check region)",
    ),
    ("MissingParameter*", AccountFault, "malformed request"),
    ("UnknownParameter", AccountFault, "malformed request"),
    ("UnsupportedProtocol", AccountFault, "malformed request"),
    (
        "RequestSizeLimitExceeded",
        AccountFault,
        "malformed request",
    ),
    ("IpInBlacklist", AccountFault, "caller IP not allowed"),
    ("IpNotInWhitelist", AccountFault, "caller IP not allowed"),
];

/// Aliyun Dysmsapi codes, from a 200 answer or a gateway error (4xx with a JSON `Code`).
const ALIYUN: &[(&str, Action, &str)] = &[
    ("isp.SYSTEM_ERROR", Retry, "provider system error"),
    ("ServiceUnavailable", Retry, "provider unavailable"),
    ("InternalError", Retry, "provider internal error"),
    // A fresh timestamp and nonce are signed for every attempt.
    (
        "InvalidTimeStamp.Expired",
        Retry,
        "timestamp expired (clock?)",
    ),
    ("SignatureNonceUsed", Retry, "nonce reused"),
    // The minute window (1 per minute); the hour and day windows run the job out of
    // attempts or past its expiry, which is the truth for that user.
    (
        "isv.BUSINESS_LIMIT_CONTROL",
        SAME_NUMBER_TOO_FAST,
        "too frequent for this number",
    ),
    ("Throttling*", PauseAll, "account API rate limit"),
    (
        "isv.DAY_LIMIT_CONTROL",
        AccountFault,
        "account daily total reached",
    ),
    (
        "isv.MONTH_LIMIT_CONTROL",
        AccountFault,
        "account monthly total reached",
    ),
    ("isv.MOBILE_NUMBER_ILLEGAL", GiveUp, "invalid number"),
    ("isv.MOBILE_COUNT_OVER_LIMIT", GiveUp, "too many numbers"),
    ("isv.BLACK_KEY_CONTROL_LIMIT", GiveUp, "banned words"),
    ("isv.PARAM_NOT_SUPPORT_URL", GiveUp, "URL in a value"),
    ("isv.SMS_CONTENT_ILLEGAL", GiveUp, "content not allowed"),
    ("isv.TEMPLATE_PARAMS_ILLEGAL", GiveUp, "value not allowed"),
    ("isv.INVALID_PARAMETERS", GiveUp, "invalid parameters"),
    // The values do not fit this account's template: its `params` are wrong, not the job.
    (
        "isv.TEMPLATE_MISSING_PARAMETERS",
        AccountFault,
        "values do not fit the template",
    ),
    (
        "isv.INVALID_JSON_PARAM",
        AccountFault,
        "values do not fit the template",
    ),
    (
        "isv.PARAM_LENGTH_LIMIT",
        AccountFault,
        "values do not fit the template",
    ),
    (
        "isv.SMS_TEMPLATE_ILLEGAL",
        AccountFault,
        "template missing or not approved",
    ),
    (
        "isv.SMS_SIGNATURE_ILLEGAL",
        AccountFault,
        "signature missing or not approved",
    ),
    (
        "isv.SMS_SIGN_ILLEGAL",
        AccountFault,
        "signature missing or not approved",
    ),
    (
        "isv.SMS_SIGNATURE_SCENE_ILLEGAL",
        AccountFault,
        "signature not for this scene",
    ),
    ("SIGNATURE_BLACKLIST", AccountFault, "signature blacklisted"),
    ("isv.EXTEND_CODE_ERROR", AccountFault, "extension code"),
    (
        "isv.DOMESTIC_NUMBER_NOT_SUPPORTED",
        AccountFault,
        "international template for a mainland number",
    ),
    (
        "isv.AMOUNT_NOT_ENOUGH",
        AccountFault,
        "account balance too low",
    ),
    ("isv.OUT_OF_SERVICE", AccountFault, "account out of service"),
    (
        "isv.PRODUCT_UN_SUBSCRIPT",
        AccountFault,
        "product not enabled",
    ),
    (
        "isv.PRODUCT_UNSUBSCRIBE",
        AccountFault,
        "product not enabled",
    ),
    ("isv.ACCOUNT_NOT_EXISTS", AccountFault, "account problem"),
    ("isv.ACCOUNT_ABNORMAL", AccountFault, "account problem"),
    (
        "isp.RAM_PERMISSION_DENY",
        AccountFault,
        "key lacks dysms:SendSms",
    ),
    ("isv.DENY_IP_RANGE", AccountFault, "caller IP not allowed"),
    (
        "SignatureDoesNotMatch",
        AccountFault,
        "signature check failed (wrong secret?)",
    ),
    (
        "InvalidAccessKeyId*",
        AccountFault,
        "access key unknown or disabled",
    ),
    ("IncompleteSignature", AccountFault, "signature malformed"),
    ("InvalidVersion", AccountFault, "malformed request"),
    ("InvalidAction*", AccountFault, "malformed request"),
    ("Missing*", AccountFault, "malformed request"),
];

/// The first row naming `code` exactly, or as a family (`Name*`); unknown codes give up.
fn by_name(table: &[(&str, Action, &'static str)], code: &str) -> Verdict {
    table
        .iter()
        .find(|(name, _, _)| match name.strip_suffix('*') {
            Some(family) => code.starts_with(family),
            None => *name == code,
        })
        .map(|&(_, action, reason)| Verdict { action, reason })
        .unwrap_or(Verdict {
            action: GiveUp,
            reason: "unknown status code",
        })
}

/// What a sender should do about `code`, an error code of a `kind` account.
pub fn classify(kind: Kind, code: &str) -> Verdict {
    match kind {
        Kind::Ronglian => ronglian(code),
        Kind::Tencent => by_name(TENCENT, code),
        Kind::Aliyun => by_name(ALIYUN, code),
    }
}

fn ronglian(code: &str) -> Verdict {
    let Ok(n) = code.parse::<u32>() else {
        return Verdict {
            action: GiveUp,
            reason: "unrecognised status code",
        };
    };
    RONGLIAN
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
            ("160032", AccountFault),
            ("112311", AccountFault),
            ("112323", AccountFault),
            ("160043", AccountFault),
            ("160036", AccountFault),
            ("160057", AccountFault),
            ("113302", AccountFault),
            ("160031", GiveUp),
            ("160030", GiveUp),
            ("160052", GiveUp),
            ("160055", GiveUp),
            ("160033", GiveUp),
            ("160049", GiveUp),
            ("160037", GiveUp),
            ("160035", GiveUp),
            ("160054", AlreadyAccepted),
            ("111109", AccountFault),
            ("111101", AccountFault),
            ("111102", AccountFault),
            ("111103", AccountFault),
            ("111104", AccountFault),
            ("111105", AccountFault),
            ("111107", AccountFault),
            ("111108", AccountFault),
            ("111113", AccountFault),
            ("111110", AccountFault),
            ("111106", Retry),
            ("111128", AccountFault),
            ("111138", AccountFault),
            ("111139", AccountFault),
            ("111140", AccountFault),
            ("111141", AccountFault),
            ("111143", AccountFault),
            ("111169", AccountFault),
            ("111181", AccountFault),
            ("111182", AccountFault),
            ("112303", AccountFault),
            ("112305", AccountFault),
            ("112310", AccountFault),
            ("160053", AccountFault),
            ("111142", AccountFault),
            ("160014", AccountFault),
        ];
        for (code, expected) in rows {
            assert_eq!(
                classify(Kind::Ronglian, code).action,
                *expected,
                "code {code}"
            );
        }
    }

    /// Each kind's families: the cases a sender must tell apart (retry, number-level,
    /// account-level, account throttling), exact names before families.
    #[test]
    fn tencent_and_aliyun_codes_have_their_actions() {
        let tencent: &[(&str, Action)] = &[
            ("InternalError.Timeout", Retry),
            ("InternalError.SigVerificationFail", AccountFault),
            ("AuthFailure.SignatureExpire", Retry),
            ("AuthFailure.SignatureFailure", AccountFault),
            ("AuthFailure.SecretIdNotFound", AccountFault),
            ("RequestLimitExceeded", PauseAll),
            ("RequestLimitExceeded.UinLimitExceeded", PauseAll),
            (
                "LimitExceeded.PhoneNumberThirtySecondLimit",
                Backoff {
                    after: Duration::from_secs(30),
                },
            ),
            ("LimitExceeded.PhoneNumberDailyLimit", GiveUp),
            ("LimitExceeded.AppDailyLimit", AccountFault),
            ("LimitExceeded.AppMainlandChinaDailyLimit", AccountFault),
            ("InvalidParameterValue.IncorrectPhoneNumber", GiveUp),
            ("FailedOperation.PhoneNumberInBlacklist", GiveUp),
            (
                "FailedOperation.InsufficientBalanceInSmsPackage",
                AccountFault,
            ),
            (
                "FailedOperation.SignatureIncorrectOrUnapproved",
                AccountFault,
            ),
            (
                "FailedOperation.TemplateIncorrectOrUnapproved",
                AccountFault,
            ),
            ("UnauthorizedOperation.SmsSdkAppIdVerifyFail", AccountFault),
            ("FailedOperation.ContainSensitiveWord", GiveUp),
            ("FailedOperation.OtherError", GiveUp),
            ("Ok", GiveUp),
        ];
        for (code, expected) in tencent {
            assert_eq!(
                classify(Kind::Tencent, code).action,
                *expected,
                "tencent {code}"
            );
        }
        let aliyun: &[(&str, Action)] = &[
            ("isp.SYSTEM_ERROR", Retry),
            ("InvalidTimeStamp.Expired", Retry),
            ("isv.BUSINESS_LIMIT_CONTROL", SAME_NUMBER_TOO_FAST),
            ("Throttling.User", PauseAll),
            ("Throttling", PauseAll),
            ("isv.DAY_LIMIT_CONTROL", AccountFault),
            ("isv.MOBILE_NUMBER_ILLEGAL", GiveUp),
            ("isv.AMOUNT_NOT_ENOUGH", AccountFault),
            ("isv.SMS_SIGNATURE_ILLEGAL", AccountFault),
            ("isv.SMS_TEMPLATE_ILLEGAL", AccountFault),
            ("SignatureDoesNotMatch", AccountFault),
            ("InvalidAccessKeyId.NotFound", AccountFault),
            ("MissingSignName", AccountFault),
            ("isv.SMS_CONTENT_ILLEGAL", GiveUp),
            ("OK", GiveUp),
        ];
        for (code, expected) in aliyun {
            assert_eq!(
                classify(Kind::Aliyun, code).action,
                *expected,
                "aliyun {code}"
            );
        }
    }

    #[test]
    fn unknown_and_garbage_codes_give_up() {
        for kind in Kind::ALL {
            assert_eq!(classify(kind, "999999").action, GiveUp);
            assert_eq!(classify(kind, "").action, GiveUp);
            assert_eq!(classify(kind, "abc").action, GiveUp);
        }
    }

    #[test]
    fn balance_has_its_own_reason() {
        assert_eq!(
            classify(Kind::Ronglian, "111142").reason,
            "account balance too low"
        );
    }
}
