//! Wiring, in one place: the binary, `smsq dev` and the tests all build the API and the
//! workers through [`Application`], so what runs in a test is what runs in production.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::codes::Codes;
use crate::config::{ConfigError, Settings};
use crate::domain::{CodeSealer, Hasher};
use crate::provider::ClientError;
use crate::store::{Hooks, Intake, LayoutError, Queue, Records, Store, StoreError};
use crate::webhooks::Dispatcher;
use crate::worker::{Worker, default_consumer_name};

/// Why a process could not be built. `Config` means exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Layout(LayoutError),
    #[error("serving the API: {0}")]
    Serve(#[from] std::io::Error),
}

/// Settings plus the shared Redis handle; builds each process's parts on demand, asking only
/// for the secrets that part needs (both need `SMSQ_SECRET`: the API seals each code with
/// it, the worker opens it; the API never needs the Ronglian account).
#[derive(Clone)]
pub struct Application {
    settings: Arc<Settings>,
    store: Store,
}

impl Application {
    /// Connects lazily: a process starts while Redis is down and recovers when it is back.
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        let store = Store::connect(&settings)?;
        Ok(Self {
            settings: Arc::new(settings),
            store,
        })
    }

    pub fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The operators' store (`smsq status`, `smsq dlq`, `smsq job`).
    pub fn records(&self) -> Records {
        Records::new(self.store.clone())
    }

    /// The code service (needs `SMSQ_SECRET`).
    pub fn codes(&self) -> Result<Codes, StartupError> {
        let key = self.settings.secrets.hash_key()?;
        let vendor = crate::captcha::vendor::Vendor::from_settings(
            &self.settings.captcha,
            &self.settings.secrets,
        )?;
        Ok(Codes::new(
            self.settings.clone(),
            Intake::new(self.store.clone()),
            Hasher::new(key.clone()),
            CodeSealer::new(&key),
        )
        .with_vendor(vendor))
    }

    /// A worker process (needs every provider account's credentials and `SMSQ_SECRET`). `None` takes the configured
    /// concurrency and a `host-pid-random` consumer name.
    pub fn worker(
        &self,
        name: Option<String>,
        concurrency: Option<usize>,
    ) -> Result<Worker, StartupError> {
        if concurrency == Some(0) {
            return Err(ConfigError::new("--concurrency", "must be at least 1").into());
        }
        let queue = Queue::new(self.store.clone());
        let accounts = crate::worker::Accounts::build(
            &self.settings.providers,
            &self.settings.secrets,
            &queue,
        )?;
        let sealer = CodeSealer::new(&self.settings.secrets.hash_key()?);
        let name = name.unwrap_or_else(default_consumer_name);
        let hooks = Hooks::new(self.store.clone());
        let dispatcher = Dispatcher::new(self.settings.clone(), hooks, name.clone())?;
        let worker = Worker::new(
            self.settings.clone(),
            queue,
            accounts,
            sealer,
            name,
            concurrency.unwrap_or(self.settings.worker.concurrency.get()),
        );
        Ok(worker.with_webhooks(dispatcher))
    }

    /// Serves the HTTP API on `listener` until `shutdown`.
    pub async fn serve_api(
        &self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), StartupError> {
        let codes = self.codes()?;
        // An API on another shard count than the workers would queue jobs nobody reads.
        // While Redis is down there is nothing to check (and nothing to queue either).
        match self.store.check_layout().await {
            Ok(_) => {}
            Err(LayoutError::Store(e)) if e.is_unavailable() => {
                tracing::warn!(error = %e, "cannot check the shard layout: Redis is unavailable");
            }
            Err(e) => return Err(StartupError::Layout(e)),
        }
        self.store.warn_if_evicting().await;
        crate::api::serve(listener, codes, Records::new(self.store.clone()), shutdown).await?;
        Ok(())
    }
}
