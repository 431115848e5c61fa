//! The OpenAPI document: served at `/openapi.json`, checked in as `docs/openapi.json`, and
//! describing every route the API serves with the README's error codes.

use std::collections::BTreeSet;

use crate::common::{settings, spawn_app};

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");

/// `SMSQ_WRITE_OPENAPI=1 cargo test --test it openapi` writes the file anew after a change.
#[tokio::test]
async fn the_served_document_is_the_checked_in_one() {
    let app = spawn_app(settings(|_| {})).await;
    let r = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let served = r.text().await.unwrap();
    let generated = smsq::api::openapi().to_pretty_json().unwrap();
    if std::env::var_os("SMSQ_WRITE_OPENAPI").is_some() {
        std::fs::write(CHECKED_IN, format!("{generated}\n")).unwrap();
    }
    let on_disk = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        on_disk.trim_end() == generated,
        "docs/openapi.json is not what the handlers describe; run \
         SMSQ_WRITE_OPENAPI=1 cargo test --test it openapi and commit it"
    );
    let served: serde_json::Value = serde_json::from_str(&served).unwrap();
    let expected: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(served, expected);
}

#[test]
fn every_error_code_of_the_readme_is_in_the_document() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table: BTreeSet<String> = readme
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let (status, code) = (cells.get(1)?, cells.get(2)?);
            (status.len() == 3 && status.parse::<u16>().is_ok())
                .then(|| code.trim_matches('`').to_owned())
        })
        .filter(|c| !c.is_empty() && !c.contains(' '))
        .collect();
    assert!(table.len() > 15, "{table:?}");
    let doc = smsq::api::openapi().to_json().unwrap();
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let mut documented = BTreeSet::new();
    for (_, item) in doc["paths"].as_object().unwrap() {
        for (_, op) in item.as_object().unwrap() {
            for (_, response) in op["responses"].as_object().into_iter().flatten() {
                let examples = &response["content"]["application/json"]["examples"];
                for (code, _) in examples.as_object().into_iter().flatten() {
                    documented.insert(code.clone());
                }
            }
        }
    }
    let missing: Vec<_> = table.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "in the README, on no route: {missing:?}"
    );
}

/// The patterns the document gives are the parsers' own (the parsers' tests keep each
/// pattern equal to what its parser takes).
#[test]
fn the_documented_patterns_are_the_parsers() {
    use smsq::domain::{CaptchaId, Mobile, Purpose, TemplateId};
    let doc: serde_json::Value =
        serde_json::from_str(&smsq::api::openapi().to_json().unwrap()).unwrap();
    let schemas = &doc["components"]["schemas"];
    let pattern = |schema: &str, field: &str| {
        schemas[schema]["properties"][field]["pattern"]
            .as_str()
            .unwrap_or_else(|| panic!("{schema}.{field} has no pattern"))
            .to_owned()
    };
    for (schema, field) in [
        ("IssueBody", "mobile"),
        ("VerifyBody", "mobile"),
        ("MessageBody", "to"),
    ] {
        assert_eq!(pattern(schema, field), Mobile::PATTERN, "{schema}.{field}");
    }
    for schema in ["IssueBody", "VerifyBody"] {
        assert_eq!(pattern(schema, "purpose"), Purpose::PATTERN);
    }
    assert_eq!(pattern("IssueBody", "captcha_id"), CaptchaId::PATTERN);
    assert_eq!(pattern("MessageBody", "template_id"), TemplateId::PATTERN);
}

/// Where `./test.sh` installs the Python tools (schemathesis, openapi-python-client).
pub fn python_tool(name: &str) -> String {
    let path = format!(
        "{}/target/tools/venv/bin/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    assert!(
        std::path::Path::new(&path).exists(),
        "\n\nthis test runs {name}: run ./test.sh (it installs it into target/tools/venv)\n\n"
    );
    path
}

/// What a newcomer does: generate a Python client from `/openapi.json`
/// (openapi-python-client, from PyPI) and use it to issue a code and verify it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_generated_from_the_document_issues_and_verifies_a_code() {
    let token = "client-token-0123456789";
    let mut s = settings(|_| {});
    s.secrets.api_tokens = vec![smsq::domain::Secret::new(token)];
    let app = spawn_app(s).await;
    let fake = crate::common::spawn_fake(crate::common::fake_options()).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 2);
    let dir = crate::common::temp_dir("python-client");
    let doc = dir.join("openapi.json");
    let served = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    std::fs::write(&doc, served.bytes().await.unwrap()).unwrap();
    let generated = std::process::Command::new(python_tool("openapi-python-client"))
        .args([
            "generate",
            "--meta",
            "none",
            "--output-path",
            "smsq_client",
            "--path",
        ])
        .arg(&doc)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        generated.status.success() && dir.join("smsq_client/api/codes/issue.py").exists(),
        "{}",
        String::from_utf8_lossy(&generated.stdout)
    );
    let script = r#"
import json, sys, time, urllib.request
from smsq_client import AuthenticatedClient
from smsq_client.api.codes import issue, verify
from smsq_client.models import IssueBody, VerifyBody, CodeAccepted, VerifyAnswer

base, token, fake = sys.argv[1:4]
client = AuthenticatedClient(base_url=base, token=token)
accepted = issue.sync(client=client, body=IssueBody(mobile="+86 138 0013 8411", purpose="login"))
assert isinstance(accepted, CodeAccepted), accepted
code = None
deadline = time.time() + 10
while code is None and time.time() < deadline:
    for m in json.load(urllib.request.urlopen(fake + "/_fake/messages")):
        if m["req_id"] == accepted.job_id:
            code = m["datas"][0]
    time.sleep(0.05)
assert code, "the provider never got the code"
wrong = verify.sync(client=client, body=VerifyBody(mobile="13800138411", purpose="login", code="000000" if code != "000000" else "111111"))
right = verify.sync(client=client, body=VerifyBody(mobile="13800138411", purpose="login", code=code))
assert isinstance(right, VerifyAnswer), right
print(json.dumps({"job_id": accepted.job_id, "wrong": wrong.valid, "right": right.valid}))
"#;
    let python = python_tool("python");
    let base = app.base.clone();
    let fake_url = fake.base_url();
    let ran = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args(["-c", script, &base, token, &fake_url])
            .current_dir(&dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    stop.cancel();
    let answer = crate::common::json_stdout(&ran);
    assert_eq!(
        (answer["wrong"].as_bool(), answer["right"].as_bool()),
        (Some(false), Some(true))
    );
}
