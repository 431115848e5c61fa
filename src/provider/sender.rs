//! One client, whatever the account's kind: what the worker calls.

use super::{
    Accepted, AliyunClient, Client, Kind, SendError, TemplateSms, TencentClient, VoiceCall,
};

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

    /// A voice code; only Ronglian accounts make calls (the worker routes voice codes to them
    /// alone), so another kind answers as a fault of its own configuration.
    pub async fn call(&self, call: &VoiceCall<'_>) -> Result<Accepted, SendError> {
        match self {
            Sender::Ronglian(c) => c.call(call).await,
            other => Err(SendError::Rejected {
                kind: other.kind(),
                code: "voice_not_supported".to_owned(),
                message: "this kind of account does not make voice calls".to_owned(),
            }),
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
