use super::*;
use crate::domain::Secret;
use chrono::TimeZone;
use std::time::Duration;

const SID: &str = "aaf98f89488d0aad0148a8e0d8d40a07";
const TOKEN: &str = "e33d4b7d2f6e4b6bb1e2a0b1f2c3d4e5";

fn account() -> RonglianAccount {
    RonglianAccount {
        account_sid: SID.into(),
        auth_token: Secret::new(TOKEN),
        app_id: "8a216da85f5c89b1015f7e6e3c2a0b1c".into(),
    }
}

/// 2026-11-24T01:36:22Z, which is 09:36:22 in Beijing.
fn instant() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 1, 36, 22).unwrap()
}

#[test]
fn timestamp_is_beijing_wall_clock_whatever_the_host_tz() {
    assert_eq!(timestamp(instant()), "20261124093622");
    // 17:00 UTC is already the next day in Beijing.
    let late = Utc.with_ymd_and_hms(2026, 12, 31, 17, 0, 0).unwrap();
    assert_eq!(timestamp(late), "20270101010000");
}

#[test]
fn signature_and_authorization_match_the_reference_values() {
    // Reference values computed independently (Python hashlib / base64).
    assert_eq!(
        signature(SID, TOKEN, "20261124093622"),
        "18165CA524849AA898306189EC6C1156"
    );
    assert_eq!(
        authorization(SID, "20261124093622"),
        "YWFmOThmODk0ODhkMGFhZDAxNDhhOGUwZDhkNDBhMDc6MjAyNjExMjQwOTM2MjI="
    );
}

#[test]
fn signed_request_is_exactly_the_documented_one() {
    let datas = vec!["123456".to_owned(), "5".to_owned()];
    let sms = TemplateSms {
        to: "13800138000",
        template_id: "1",
        datas: &datas,
        req_id: Some("0123456789abcdef0123456789abcdef"),
    };
    let signed = sign("https://app.cloopen.com:8883/", &account(), &sms, instant());
    assert_eq!(
        signed.url,
        "https://app.cloopen.com:8883/2013-12-26/Accounts/aaf98f89488d0aad0148a8e0d8d40a07/SMS/TemplateSMS?sig=18165CA524849AA898306189EC6C1156"
    );
    assert_eq!(
        signed.headers,
        vec![
            ("Accept", "application/json".to_owned()),
            ("Content-Type", "application/json;charset=utf-8".to_owned()),
            ("Accept-Charset", "UTF-8".to_owned()),
            (
                "Authorization",
                "YWFmOThmODk0ODhkMGFhZDAxNDhhOGUwZDhkNDBhMDc6MjAyNjExMjQwOTM2MjI=".to_owned()
            ),
        ]
    );
    assert_eq!(
        signed.body,
        r#"{"to":"13800138000","appId":"8a216da85f5c89b1015f7e6e3c2a0b1c","templateId":"1","datas":["123456","5"],"reqId":"0123456789abcdef0123456789abcdef"}"#
    );
}

#[test]
fn req_id_is_left_out_when_absent() {
    let sms = TemplateSms {
        to: "13800138000",
        template_id: "1",
        datas: &[],
        req_id: None,
    };
    let signed = sign("https://x", &account(), &sms, instant());
    assert!(!signed.body.contains("reqId"));
    assert!(signed.body.contains(r#""datas":[]"#));
}

#[test]
fn answers_are_parsed_by_status_code_string() {
    let ok = parse_answer(
        r#"{"statusCode":"000000","templateSMS":{"smsMessageSid":"ff8080813c373cab013c94b0f0512345","dateCreated":"20130201155306"}}"#,
    )
    .unwrap();
    assert_eq!(ok.message_id, "ff8080813c373cab013c94b0f0512345");
    match parse_answer(r#"{"statusCode":"160038","statusMsg":"短信验证码发送过频繁"}"#) {
        Err(SendError::Rejected { code, .. }) => assert_eq!(code, "160038"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse_answer("<Response/>"),
        Err(SendError::Malformed(_))
    ));
    assert!(matches!(
        parse_answer(r#"{"statusCode":"000000"}"#),
        Err(SendError::Malformed(_))
    ));
}

#[test]
fn debug_output_never_contains_the_token() {
    let settings = ProviderSettings {
        base_url: "https://app.cloopen.com:8883".into(),
        timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
    };
    let client = Client::new(&settings, account()).unwrap();
    assert!(!format!("{client:?}").contains(TOKEN));
    assert!(!format!("{:?}", account()).contains(TOKEN));
}
