//! Notification messages: any template SMS through the same queue as the codes.

use serde::Serialize;

use super::idempotency::parse_answer;
use super::{CodeError, Codes, IdempotencyRequest};
use crate::domain::{Job, JobId, JobKind, Mobile, TemplateId, now_ms};
use crate::store::{Idempotency, IssueOutcome, NewMessage, StoreError};

/// `202` body of `POST /v1/messages`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(example = json!({"job_id": "00a1b2c3d4e5f60718293a4b5c6d7e8f"}))]
pub struct MessageAccepted {
    pub job_id: String,
}

#[derive(Debug, Clone)]
pub struct MessageRequest {
    pub to: Mobile,
    pub template_id: TemplateId,
    pub datas: Vec<String>,
    pub idempotency: Option<IdempotencyRequest>,
    /// The request's `x-request-id`, kept on the job.
    pub request_id: Option<crate::domain::RequestId>,
}

impl Codes {
    pub async fn enqueue_message(&self, req: MessageRequest) -> Result<MessageAccepted, CodeError> {
        let idem = req.idempotency.as_ref().map(|i| i.digests("messages"));
        if let Some((name, fp)) = &idem
            && let Some(answer) = self.replay(&req.to, name, fp).await?
        {
            return Ok(answer);
        }
        let job = Job {
            id: JobId::generate_in(self.store.shards().of_mobile(&req.to)),
            kind: JobKind::Message,
            to: req.to,
            purpose: None,
            template_id: req.template_id,
            datas: req.datas,
            attempt: 0,
            created_ms: now_ms(),
            expires_ms: None,
            request_id: req.request_id,
            test: false,
            account: None,
            avoid: None,
            channel: crate::domain::Channel::Sms,
            code_of: None,
        };
        let accepted = MessageAccepted {
            job_id: job.id.to_string(),
        };
        let answer = serde_json::to_string(&accepted).expect("plain struct serializes");
        let outcome = self
            .store
            .enqueue_message(&NewMessage {
                job: &job,
                idempotency: idem.as_ref().map(|(digest, fingerprint)| Idempotency {
                    digest,
                    fingerprint,
                }),
                answer: &answer,
            })
            .await?;
        match outcome {
            IssueOutcome::Issued(_) => {
                tracing::info!(job_id = %job.id, mobile = %job.to, "message queued");
                crate::metrics::message_queued();
                Ok(accepted)
            }
            IssueOutcome::Replay(answer) => parse_answer(&answer),
            IssueOutcome::Conflict => Err(CodeError::IdempotencyConflict),
            IssueOutcome::QueueFull => Err(CodeError::QueueFull),
            other => Err(CodeError::Store(StoreError::Reply(format!(
                "unexpected outcome for a message: {other:?}"
            )))),
        }
    }
}
