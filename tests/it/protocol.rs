//! The fake provider checks the protocol like the real service: one row per fault, each
//! answered with its real code.

use chrono::Utc;

use crate::common::{APP_ID, SID, TOKEN, fake_options, spawn_fake};

/// One request to the fake, starting from a valid one; each protocol case changes one thing.
#[derive(Clone)]
struct Req {
    version: String,
    sid: String,
    sig: String,
    ts: String,
    auth: Option<String>,
    body: String,
}

impl Req {
    fn valid() -> Self {
        let ts = smsq::provider::timestamp(Utc::now());
        Self {
            version: "2013-12-26".into(),
            sid: SID.into(),
            sig: smsq::provider::signature(SID, TOKEN, &ts),
            auth: Some(smsq::provider::authorization(SID, &ts)),
            ts,
            body: format!(
                r#"{{"to":"13800138000","appId":"{APP_ID}","templateId":"1","datas":["1"]}}"#
            ),
        }
    }

    fn replace(&mut self, from: &str, to: &str) {
        self.body = self.body.replace(from, to);
    }

    async fn send(&self, base: &str, accept: Option<&str>) -> String {
        let url = format!(
            "{base}/{}/Accounts/{}/SMS/TemplateSMS?sig={}",
            self.version, self.sid, self.sig
        );
        let mut r = reqwest::Client::new()
            .post(url)
            .header("Content-Type", "application/json;charset=utf-8")
            .body(self.body.clone());
        if let Some(a) = &self.auth {
            r = r.header("Authorization", a);
        }
        if let Some(a) = accept {
            r = r.header("Accept", a);
        }
        r.send().await.unwrap().text().await.unwrap()
    }
}

fn status_code(text: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    v["statusCode"].as_str().unwrap().to_owned()
}

/// Each row breaks one thing of a valid request and names the code the real service answers.
/// (what breaks, how, the code the real service answers).
type Case = (&'static str, fn(&mut Req), &'static str);

const PROTOCOL_CASES: &[Case] = &[
    (
        "wrong version",
        |r| r.version = "2013-12-25".into(),
        "111110",
    ),
    ("unknown account", |r| r.sid = "f".repeat(32), "111141"),
    ("no Authorization", |r| r.auth = None, "111101"),
    (
        "Authorization not base64",
        |r| r.auth = Some("%%%".into()),
        "111102",
    ),
    (
        "Authorization of another account",
        |r| r.auth = Some(smsq::provider::authorization(&"f".repeat(32), &r.ts)),
        "111103",
    ),
    ("lower-case sig", |r| r.sig = r.sig.to_lowercase(), "111109"),
    ("empty sig", |r| r.sig = String::new(), "111104"),
    ("malformed sig", |r| r.sig = "XYZ".into(), "111105"),
    ("empty body", |r| r.body = String::new(), "160030"),
    ("body not JSON", |r| r.body = "{not json".into(), "160031"),
    ("unknown app", |r| r.replace(APP_ID, "nope"), "111181"),
    (
        "bad number",
        |r| r.replace("13800138000", "12345"),
        "160042",
    ),
    (
        "repeated number",
        |r| r.replace("13800138000", "13800138000,13800138000"),
        "160045",
    ),
    (
        "template id not digits",
        |r| r.replace(r#""templateId":"1""#, r#""templateId":"x1""#),
        "160057",
    ),
    (
        "datas not strings",
        |r| r.replace(r#"["1"]"#, "[1]"),
        "160052",
    ),
    (
        "no number",
        |r| r.replace(r#""to":"13800138000","#, ""),
        "160044",
    ),
];

#[tokio::test]
async fn fake_checks_the_protocol_like_the_real_service() {
    let fake = spawn_fake(fake_options()).await;
    let base = fake.base_url();
    let json = Some("application/json");
    // The happy path, to show the cases below differ by one thing each.
    assert_eq!(status_code(&Req::valid().send(&base, json).await), "000000");
    // No Accept header: the answer is XML.
    let mut other_number = Req::valid();
    other_number.replace("13800138000", "13900139000");
    let xml = other_number.send(&base, None).await;
    assert!(
        xml.starts_with("<?xml") && xml.contains("<statusCode>000000</statusCode>"),
        "{xml}"
    );
    for (what, change, expected) in PROTOCOL_CASES {
        let mut req = Req::valid();
        change(&mut req);
        let text = req.send(&base, json).await;
        assert_eq!(status_code(&text), *expected, "{what}");
    }
    // Only the two accepted sends were recorded.
    assert_eq!(fake.messages().len(), 2);
}
