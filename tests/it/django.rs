//! The Django example (`examples/django/`) runs its own tests against a live smsq: API,
//! worker, fake provider pushing delivery reports, and webhooks to the example's live server.
//! And the README's Node `fetch` snippet issues and verifies a code as it is written there.

use std::time::Duration;

use smsq::domain::Secret;

use crate::common::{REPORTS_TOKEN, fake_options, settings, spawn_app, spawn_fake};

const TOKEN: &str = "django-app-token-0123456789";
const HOOK_SECRET: &str = "django-webhook-secret-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_django_example_signs_a_number_up_and_hears_its_code_delivered() {
    let port = smsq::dev::local_redis::LocalRedis::free_port().unwrap();
    let mut s = settings(|c| {
        c.webhooks.endpoint.push(smsq::config::RawEndpoint {
            name: "django".into(),
            url: format!("http://127.0.0.1:{port}/smsq/webhook"),
            events: vec!["code.*".into()],
        });
    });
    s.secrets.api_tokens = vec![Secret::new(TOKEN)];
    s.secrets.webhook_secrets.insert(
        "SMSQ_WEBHOOK_SECRET_DJANGO".into(),
        Secret::new(HOOK_SECRET),
    );
    let app = spawn_app(s).await;
    let mut opts = fake_options();
    opts.report_url = Some(format!(
        "{}/v1/provider/ronglian/reports/{REPORTS_TOKEN}",
        app.base
    ));
    opts.report_delay_ms = 20;
    let fake = spawn_fake(opts).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 2);

    let python = crate::openapi::python_tool("python");
    let (base, fake_url) = (app.base.clone(), fake.base_url());
    let ran = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args(["manage.py", "test", "accounts", "-v", "2"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/django"))
            .env("SMSQ_URL", base)
            .env("SMSQ_TOKEN", TOKEN)
            .env("SMSQ_WEBHOOK_SECRET", HOOK_SECRET)
            .env("SMSQ_FAKE_URL", fake_url)
            .env("DJANGO_LIVE_PORT", port.to_string())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    stop.cancel();
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(ran.status.success(), "the example's tests:\n{said}");
    assert!(said.contains("Ran 3 tests"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_node_snippet_issues_and_verifies_a_code() {
    let snippet = crate::common::readme_snippet("js", "async function smsq(");
    let mut s = settings(|_| {});
    s.secrets.api_tokens = vec![Secret::new(TOKEN)];
    let app = spawn_app(s).await;
    let fake = spawn_fake(fake_options()).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 2);
    let driver = format!(
        r#"{snippet}
(async () => {{
  const {{ job_id }} = await smsq("/v1/codes", {{ mobile: "13800138910", purpose: "login" }});
  let code;
  for (let i = 0; i < 200 && !code; i++) {{
    const sent = await (await fetch(process.env.SMSQ_FAKE_URL + "/_fake/messages")).json();
    code = sent.find((m) => m.req_id === job_id)?.datas[0];
    if (!code) await new Promise((r) => setTimeout(r, 50));
  }}
  const {{ valid }} = await smsq("/v1/codes/verify", {{ mobile: "13800138910", purpose: "login", code }});
  let refused;
  try {{ await smsq("/v1/codes", {{ mobile: "123" }}); }} catch (e) {{ refused = e.code; }}
  console.log(JSON.stringify({{ valid, refused }}));
}})();"#
    );
    let (base, fake_url) = (app.base.clone(), fake.base_url());
    let ran = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .args(["-e", &driver])
            .env("SMSQ_URL", base)
            .env("SMSQ_TOKEN", TOKEN)
            .env("SMSQ_FAKE_URL", fake_url)
            .output()
            .expect("node (./test.sh installs it)")
    })
    .await
    .unwrap();
    stop.cancel();
    let answer = crate::common::json_stdout(&ran);
    assert_eq!(answer["valid"], true);
    assert_eq!(answer["refused"], "invalid_mobile");
    let _ = Duration::ZERO;
}
