//! A TCP stand-in for a slow network to Redis: every byte sent to Redis arrives a set time
//! later (replies are not held), so each command, pipelined or not, takes that much longer.
//! Tests use it to put an API deadline between two Redis steps of one request.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};
use tokio::time::Instant;

pub struct SlowRedis {
    /// `redis://127.0.0.1:<port>`, through the delay.
    pub url: String,
    delay_ms: Arc<AtomicU64>,
}

impl SlowRedis {
    /// Commands sent from now on reach Redis `delay` later.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }
}

/// Listens on a free port and forwards each connection to the Redis at `redis_url`
/// (a `redis+unix://` socket, as the test harness starts it).
pub async fn slow_redis(redis_url: &str) -> SlowRedis {
    let socket = PathBuf::from(
        redis_url
            .strip_prefix("redis+unix://")
            .expect("the harness's Redis listens on a unix socket"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("redis://{}", listener.local_addr().expect("addr"));
    let delay_ms = Arc::new(AtomicU64::new(0));
    let delay = delay_ms.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = UnixStream::connect(&socket).await else {
                continue;
            };
            let (from_client, mut to_client) = client.into_split();
            let (mut from_server, to_server) = server.into_split();
            tokio::spawn(delayed(from_client, to_server, delay.clone()));
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
            });
        }
    });
    SlowRedis { url, delay_ms }
}

async fn delayed(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin + Send + 'static,
    delay: Arc<AtomicU64>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(async move {
        while let Some((due, bytes)) = rx.recv().await {
            // The delay is the fault being injected, not a wait for something to happen.
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        let due = Instant::now() + Duration::from_millis(delay.load(Ordering::Relaxed));
        if tx.send((due, buf[..n].to_vec())).is_err() {
            return;
        }
    }
}
