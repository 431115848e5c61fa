//! One connection type for a single Redis and for Redis Cluster, so every command, pipeline
//! and script in the store is written once. Both sides reconnect by themselves; the cluster
//! client also follows MOVED/ASK redirections and picks up a failover's new master.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, Pipeline, RedisFuture, Value};

use super::StoreError;
use crate::config::RedisSettings;

#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    /// Commands fail within `response` (after a few quick retries); nothing is dialled until
    /// the first command, so a process starts while Redis is down.
    pub fn open(settings: &RedisSettings, response: Duration) -> Result<Self, StoreError> {
        if settings.cluster {
            let client = ClusterClientBuilder::new(settings.seeds())
                // A failover takes a few seconds; a request may wait through MOVED/ASK and
                // reconnects for up to twice the response timeout before it fails (and the
                // API answers 503).
                .overall_response_timeout(Some(response * 2))
                .retries(3)
                .min_retry_wait(20)
                .max_retry_wait(500)
                .build()?;
            let config = redis::cluster::ClusterConfig::new()
                .set_connection_timeout(settings.timeout)
                .set_response_timeout(response);
            return Ok(Conn::Cluster(
                client.get_pending_async_connection_with_config(config),
            ));
        }
        let client = Client::open(settings.url.as_str())?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(response))
            .set_connection_timeout(Some(settings.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        Ok(Conn::Single(ConnectionManager::new_lazy_with_config(
            client, config,
        )?))
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
