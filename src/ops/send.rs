//! `smsq send MOBILE`: issue a code through the same atomic path as the API, then follow the
//! job to its end, printing each status change with its time since the request (from the
//! events' own timestamps, in ms).

use std::time::{Duration, Instant};

use crate::codes::{CodeAccepted, CodeError, CodeRequest, Codes};
use crate::domain::{JobId, JobStatus, Mobile, Purpose, now_ms};
use crate::store::{Records, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the code was refused: {0}")]
    Refused(#[from] CodeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("job {0} did not end within {1:?} (is a worker running?)")]
    Timeout(String, Duration),
}

/// Issues a code as the API would (no client IP, captcha or idempotency key).
pub async fn issue(
    codes: &Codes,
    mobile: Mobile,
    purpose: Purpose,
) -> Result<CodeAccepted, CodeError> {
    codes
        .issue(CodeRequest {
            mobile,
            purpose,
            client_ip: None,
            captcha: None,
            idempotency: None,
            request_id: None,
            channel: crate::domain::Channel::Sms,
        })
        .await
}

/// Issues the code and follows its job; returns the terminal status.
pub async fn send_and_follow(
    codes: &Codes,
    store: &Records,
    mobile: Mobile,
    purpose: Purpose,
    timeout: Duration,
) -> Result<JobStatus, SendError> {
    let started = Instant::now();
    let issued_ms = now_ms();
    let accepted = issue(codes, mobile.clone(), purpose).await?;
    println!(
        "{:>8}  issued job {} for {mobile} (code valid {} s)",
        ms(started),
        accepted.job_id,
        accepted.expires_in
    );
    let id = JobId::parse(&accepted.job_id)
        .ok_or_else(|| StoreError::Reply(format!("bad job id {}", accepted.job_id)))?;
    let mut seen = 0;
    loop {
        let events = store.events_of(&id).await?;
        for e in events.iter().skip(seen) {
            let error = if e.error.is_empty() {
                String::new()
            } else {
                format!(": {}", e.error)
            };
            // The event's own time (written by the script), not when this loop saw it.
            let at = format!("+{} ms", (e.ts - issued_ms).max(0));
            println!("{at:>8}  {} (attempt {}){error}", e.status, e.attempt);
        }
        seen = seen.max(events.len());
        let last = events.last().map(|e| e.status);
        if let Some(status) = last.filter(|s| s.is_terminal()) {
            return Ok(status);
        }
        if started.elapsed() > timeout {
            return Err(SendError::Timeout(accepted.job_id, timeout));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ms(since: Instant) -> String {
    format!("+{} ms", since.elapsed().as_millis())
}
