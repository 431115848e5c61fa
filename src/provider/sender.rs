//! One client, whatever the account's kind: what the worker calls.

use super::{Accepted, AliyunClient, Client, Kind, SendError, TemplateSms, TencentClient};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

#[derive(Debug, Clone)]
pub enum Sender {
    Ronglian(Client),
    Tencent(TencentClient),
    Aliyun(AliyunClient),
}

impl Sender {
    pub fn kind(&self) -> Kind {
        match self {
            Sender::Ronglian(_) => Kind::Ronglian,
            Sender::Tencent(_) => Kind::Tencent,
            Sender::Aliyun(_) => Kind::Aliyun,
        }
    }

    pub async fn send(&self, sms: &TemplateSms<'_>) -> Result<Accepted, SendError> {
        match self {
            Sender::Ronglian(c) => c.send(sms).await,
            Sender::Tencent(c) => c.send(sms).await,
            Sender::Aliyun(c) => c.send(sms).await,
        }
    }
}
