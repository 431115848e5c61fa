//! The provider side: the fake's options for the test account, and a client for it.

use std::time::Duration;

use smsq::config::{ProviderSettings, RonglianAccount};
use smsq::dev::fake::{self, FakeHandle, FakeOptions};
use smsq::domain::Secret;
use smsq::provider::Client;

use super::{APP_ID, SID, TOKEN};

pub fn fake_options() -> FakeOptions {
    FakeOptions::new(SID, TOKEN, APP_ID)
}

pub async fn spawn_fake(opts: FakeOptions) -> FakeHandle {
    fake::spawn(opts).await.expect("fake provider starts")
}

/// A client for the test account, with a 500 ms connect timeout.
pub fn client(base_url: &str, token: &str, timeout_ms: u64) -> Client {
    let settings = ProviderSettings {
        base_url: base_url.to_owned(),
        timeout: Duration::from_millis(timeout_ms),
        connect_timeout: Duration::from_millis(500),
    };
    let account = RonglianAccount {
        account_sid: SID.into(),
        auth_token: Secret::new(token),
        app_id: APP_ID.into(),
    };
    Client::new(&settings, account).unwrap()
}
