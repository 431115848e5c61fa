//! The Ronglian client against `smsq fake-provider` over loopback.

use std::time::Duration;

use chrono::Utc;
use smsq::dev::fake::FakeOptions;
use smsq::provider::{Action, SendError, TemplateSms, TransportKind};

use crate::common::{TOKEN, client, fake_options, spawn_fake};

async fn send_with(
    opts: FakeOptions,
    template: &str,
    req_id: Option<&str>,
) -> (
    Result<smsq::provider::Accepted, SendError>,
    smsq::dev::fake::FakeHandle,
) {
    let fake = spawn_fake(opts).await;
    let c = client(&fake.base_url(), TOKEN, 2000);
    let datas = vec!["123456".to_owned(), "5".to_owned()];
    let sms = TemplateSms {
        to: "13800138000",
        template_id: template,
        datas: &datas,
        req_id,
    };
    let result = c.send(&sms).await;
    (result, fake)
}

/// Template 1 to 13800138000, no variables, no reqId.
fn plain_sms() -> TemplateSms<'static> {
    TemplateSms {
        to: "13800138000",
        template_id: "1",
        datas: &[],
        req_id: None,
    }
}

/// Sends the plain SMS twice: the first must be accepted; returns what the second got.
async fn send_twice(opts: FakeOptions) -> Result<smsq::provider::Accepted, SendError> {
    let fake = spawn_fake(opts).await;
    let c = client(&fake.base_url(), TOKEN, 2000);
    c.send(&plain_sms()).await.expect("first send accepted");
    c.send(&plain_sms()).await
}

fn rejected_code(result: &Result<smsq::provider::Accepted, SendError>) -> String {
    match result {
        Err(SendError::Rejected { code, .. }) => code.clone(),
        other => panic!("expected a provider error, got {other:?}"),
    }
}

#[tokio::test]
async fn accepted_message_is_recorded_by_the_fake() {
    let (result, fake) = send_with(
        fake_options(),
        "1",
        Some("0123456789abcdef0123456789abcdef"),
    )
    .await;
    let accepted = result.unwrap();
    assert_eq!(accepted.message_id.len(), 32);
    assert!(accepted.message_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(accepted.date_created.len(), 14);
    let messages = fake.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].sms_message_sid, accepted.message_id);
    assert_eq!(messages[0].to, "13800138000");
    assert_eq!(messages[0].datas, vec!["123456", "5"]);
    assert_eq!(
        messages[0].req_id.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
}

#[tokio::test]
async fn wrong_token_is_111109_an_account_fault() {
    let fake = spawn_fake(fake_options()).await;
    let c = client(&fake.base_url(), "ffffffffffffffffffffffffffffffff", 2000);
    let sms = plain_sms();
    let result = c.send(&sms).await;
    assert_eq!(rejected_code(&result), "111109");
    // The account's, not the number's: another account could send it (alone, it fails).
    assert_eq!(result.unwrap_err().verdict().action, Action::AccountFault);
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn stale_timestamp_is_111106() {
    let fake = spawn_fake(fake_options()).await;
    let c = client(&fake.base_url(), TOKEN, 2000);
    let sms = plain_sms();
    let two_days_ago = Utc::now() - chrono::Duration::days(2);
    let result = c.send_at(&sms, two_days_ago).await;
    assert_eq!(rejected_code(&result), "111106");
    // A timestamp in UTC instead of UTC+8 is "8 hours old": inside the 24 h window, accepted.
    let utc_wall_clock = Utc::now() - chrono::Duration::hours(8);
    assert!(c.send_at(&sms, utc_wall_clock).await.is_ok());
}

#[tokio::test]
async fn unknown_template_is_160032_an_account_fault() {
    let (result, fake) = send_with(fake_options(), "999", None).await;
    assert_eq!(rejected_code(&result), "160032");
    assert_eq!(result.unwrap_err().verdict().action, Action::AccountFault);
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn too_frequent_for_one_number_is_160038_and_backs_off() {
    let mut opts = fake_options();
    opts.per_number_interval_secs = Some(60);
    let result = send_twice(opts).await;
    assert_eq!(rejected_code(&result), "160038");
    assert!(matches!(
        result.unwrap_err().verdict().action,
        Action::Backoff { .. }
    ));
}

#[tokio::test]
async fn daily_limit_is_160040_and_gives_up() {
    let mut opts = fake_options();
    opts.daily_limit = Some(1);
    let result = send_twice(opts).await;
    assert_eq!(rejected_code(&result), "160040");
    assert_eq!(result.unwrap_err().verdict().action, Action::GiveUp);
}

#[tokio::test]
async fn system_error_160000_is_retried() {
    let mut opts = fake_options();
    opts.error_rate = 1.0;
    let (result, _fake) = send_with(opts, "1", None).await;
    assert_eq!(rejected_code(&result), "160000");
    assert_eq!(result.unwrap_err().verdict().action, Action::Retry);
}

#[tokio::test]
async fn http_500_is_retried() {
    let mut opts = fake_options();
    opts.http500_rate = 1.0;
    let (result, _fake) = send_with(opts, "1", None).await;
    match &result {
        Err(SendError::Http { status: 500 }) => {}
        other => panic!("expected HTTP 500, got {other:?}"),
    }
    assert_eq!(result.unwrap_err().verdict().action, Action::Retry);
}

#[tokio::test]
async fn a_reused_req_id_is_160054_already_accepted() {
    let fake = spawn_fake(fake_options()).await;
    let c = client(&fake.base_url(), TOKEN, 2000);
    let sms = TemplateSms {
        to: "13800138000",
        template_id: "1",
        datas: &[],
        req_id: Some("abc"),
    };
    c.send(&sms).await.unwrap();
    let result = c.send(&sms).await;
    assert_eq!(rejected_code(&result), "160054");
    assert_eq!(
        result.unwrap_err().verdict().action,
        Action::AlreadyAccepted
    );
    assert_eq!(fake.messages().len(), 1);
}

#[tokio::test]
async fn dropped_connection_is_a_transport_error_that_may_have_reached() {
    let mut opts = fake_options();
    opts.drop_rate = 1.0;
    let (result, fake) = send_with(opts, "1", None).await;
    match result {
        Err(SendError::Transport { kind, reached, .. }) => {
            assert_eq!(kind, TransportKind::Broken);
            assert!(reached);
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn slow_provider_is_a_timeout() {
    let mut opts = fake_options();
    // An answer 30 s away and a 300 ms timeout: giving up in less than a third of the delay
    // shows the timeout works, however loaded the machine is.
    opts.delay_ms = 30_000;
    let fake = spawn_fake(opts).await;
    let c = client(&fake.base_url(), TOKEN, 300);
    let sms = plain_sms();
    let started = std::time::Instant::now();
    let result = c.send(&sms).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "timeout not enforced"
    );
    match &result {
        Err(SendError::Transport {
            kind: TransportKind::Timeout,
            reached: true,
            ..
        }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(result.unwrap_err().verdict().action, Action::Retry);
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error_that_never_reached() {
    let port = smsq::dev::local_redis::LocalRedis::free_port().unwrap();
    let c = client(&format!("http://127.0.0.1:{port}"), TOKEN, 1000);
    let sms = plain_sms();
    match c.send(&sms).await {
        Err(SendError::Transport {
            kind: TransportKind::Connect,
            reached: false,
            detail,
        }) => {
            assert!(
                !detail.contains("sig="),
                "the sig must not leak into errors: {detail}"
            );
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
}

/// What the fake checks, request by request, as the real service would.
#[tokio::test]
async fn a_provider_that_lies_is_malformed_and_retried() {
    let mut opts = fake_options();
    opts.garbage_rate = 1.0;
    let (result, _fake) = send_with(opts, "1", None).await;
    assert!(matches!(result, Err(SendError::Malformed(_))), "{result:?}");
    assert_eq!(result.unwrap_err().verdict().action, Action::Retry);
}

#[tokio::test]
async fn accepted_messages_are_appended_to_the_record_file() {
    let dir = crate::common::temp_dir("record");
    let mut opts = fake_options();
    opts.record = Some(dir.join("messages.jsonl"));
    let (result, fake) = send_with(opts, "1", Some("r1")).await;
    let accepted = result.unwrap();
    let text = std::fs::read_to_string(dir.join("messages.jsonl")).unwrap();
    let lines: Vec<smsq::dev::fake::FakeMessage> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, fake.messages());
    assert_eq!(lines[0].sms_message_sid, accepted.message_id);
    // And over HTTP, for tests and the demo.
    let listed: Vec<smsq::dev::fake::FakeMessage> =
        reqwest::get(format!("{}/_fake/messages", fake.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(listed, lines);
}

/// The client verifies certificates: a provider with a self-signed certificate is refused
/// before any request is written.
#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    use std::sync::Arc;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

    smsq::provider::install_crypto();
    let cert = CertificateDer::from_pem_slice(include_bytes!("fixtures/self-signed.crt")).unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("fixtures/self-signed.key")).unwrap();
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            // A completed handshake would mean the client trusted the certificate.
            let _ = seen_tx.send(acceptor.accept(tcp).await.is_ok());
        }
    });
    let c = client(&format!("https://localhost:{port}"), TOKEN, 2000);
    let sms = plain_sms();
    match c.send(&sms).await {
        Err(SendError::Transport {
            kind: TransportKind::Connect,
            reached: false,
            detail,
        }) => {
            assert!(detail.to_lowercase().contains("certificate"), "{detail}");
        }
        other => panic!("expected a refused certificate, got {other:?}"),
    }
    assert_eq!(
        seen_rx.recv().await,
        Some(false),
        "the TLS handshake must fail"
    );
}

/// A provider-side 307/308 would make an HTTP client resend the body (the code in `datas`)
/// to wherever `Location` points: the client must not follow it.
#[tokio::test]
async fn a_redirect_is_not_followed_and_the_body_goes_nowhere_else() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;

    let elsewhere_hits = Arc::new(AtomicUsize::new(0));
    let hits = elsewhere_hits.clone();
    let elsewhere = axum::Router::new().fallback(move || {
        hits.fetch_add(1, Ordering::SeqCst);
        async { StatusCode::OK }
    });
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_url = format!("http://{}/stolen", other.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(other, elsewhere).await });
    for status in [
        StatusCode::TEMPORARY_REDIRECT,
        StatusCode::PERMANENT_REDIRECT,
    ] {
        let location = other_url.clone();
        let redirecting = axum::Router::new().fallback(move || {
            let location = location.clone();
            async move { (status, [(header::LOCATION, location)]).into_response() }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, redirecting).await });
        let c = client(&base, TOKEN, 2000);
        let datas = vec!["123456".to_owned(), "5".to_owned()];
        let sms = TemplateSms {
            to: "13800138000",
            template_id: "1",
            datas: &datas,
            req_id: Some("r-redirect"),
        };
        let result = c.send(&sms).await;
        match &result {
            Err(e @ SendError::Http { status: s }) => {
                assert_eq!(*s, status.as_u16());
                assert_eq!(e.verdict().action, Action::AccountFault);
                assert!(e.verdict().reason.contains("redirect"), "{:?}", e.verdict());
            }
            other => panic!("expected the {status} itself, got {other:?}"),
        }
    }
    assert_eq!(
        elsewhere_hits.load(Ordering::SeqCst),
        0,
        "the body went to the redirect target"
    );
}

/// A fake that runs for days (`smsq dev`, a soak) stays bounded: it keeps its last `--keep`
/// messages and reqIds, numbers every message it ever accepted, and lists the newer ones.
#[tokio::test]
async fn the_fake_remembers_only_its_last_messages() {
    let mut opts = fake_options();
    opts.keep = 10;
    let fake = spawn_fake(opts).await;
    let c = client(&fake.base_url(), TOKEN, 2000);
    let datas = vec!["1".to_owned()];
    for n in 0..30u64 {
        let to = format!("{}", 13800138100u64 + n);
        let req_id = format!("keep-{n}");
        let sms = TemplateSms {
            to: &to,
            template_id: "1",
            datas: &datas,
            req_id: Some(&req_id),
        };
        c.send(&sms).await.expect("accepted");
    }
    let kept = fake.messages();
    assert_eq!(kept.len(), 10);
    assert_eq!(kept[0].seq, 20);
    assert_eq!(kept[9].seq, 29);
    let newer: Vec<smsq::dev::fake::FakeMessage> =
        reqwest::get(format!("{}/_fake/messages?since=25", fake.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(
        newer.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [25, 26, 27, 28, 29]
    );
    // A recent reqId is still a duplicate; one older than the last 10 has been forgotten.
    let sms = |req_id: &'static str| TemplateSms {
        to: "13800138199",
        template_id: "1",
        datas: &[],
        req_id: Some(req_id),
    };
    assert_eq!(rejected_code(&c.send(&sms("keep-29")).await), "160054");
    assert!(c.send(&sms("keep-0")).await.is_ok());
}
