//! One job, from its stream entry to a recorded outcome.

use std::time::{Duration, Instant};

use rand::RngExt;
use tracing::Instrument;

use super::accounts::{Account, Choice};
use super::retry::{self, Next};
use super::{Context, Limiter};
use crate::domain::{Channel, Code, Job, JobStatus, OpenError, Shard, now_ms};
use crate::metrics;
use crate::provider::{Accepted, Action, SendError, TemplateSms, Verdict, VoiceCall};
use crate::store::{Begin, CircuitOp, Entry, Fence, Outcome, ProviderFailure, Settled, StoreError};

/// How handling an entry ended, for the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Handled {
    pub shard: Shard,
    pub entry_id: String,
    pub ending: Ending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// Its outcome is recorded (or it was dead-lettered) and it is acked.
    Done,
    /// A Redis error left it pending with us: try it again soon. `count_delivery` when the
    /// error was not an outage (a script failing on this entry), so a poison pill ends.
    Stuck { count_delivery: bool },
}

/// Handles one entry. Never panics on bad input and never acks before the outcome is written:
/// on a Redis failure the entry stays pending with us and comes back.
pub(super) async fn handle(ctx: &Context, entry: Entry) -> Handled {
    let ending = handle_entry(ctx, &entry).await;
    Handled {
        shard: entry.shard,
        entry_id: entry.entry_id,
        ending,
    }
}

async fn handle_entry(ctx: &Context, entry: &Entry) -> Ending {
    let job = match &entry.job {
        Ok(job) => job.clone(),
        Err(reason) => {
            tracing::warn!(entry = %entry.entry_id, %reason, "poison entry: dead-lettered");
            return match ctx.queue.poison(entry, reason, now_ms()).await {
                Ok(()) => Ending::Done,
                Err(e) => {
                    tracing::error!(entry = %entry.entry_id, error = %e, "cannot dead-letter; entry stays pending");
                    stuck(&e)
                }
            };
        }
    };
    let span = tracing::info_span!(
        "job",
        job_id = %job.id,
        mobile = %job.to,
        attempt = job.attempt + 1,
        request_id = tracing::field::Empty,
    );
    if let Some(request_id) = &job.request_id {
        span.record("request_id", tracing::field::display(request_id));
    }
    match deliver(ctx, entry, &job).instrument(span.clone()).await {
        Ok(()) => Ending::Done,
        Err(e) => {
            span.in_scope(|| tracing::error!(error = %e, "redis error; entry stays pending"));
            stuck(&e)
        }
    }
}

fn stuck(error: &StoreError) -> Ending {
    Ending::Stuck {
        count_delivery: !error.is_unavailable(),
    }
}

/// Waits for a send slot of an account's fleet-wide rate. A long wait (a pause, a low rate)
/// keeps the entry's idle time fresh so the `claim_idle` backstop does not hand it to another
/// worker.
async fn wait_for_slot(ctx: &Context, entry: &Entry, limiter: &Limiter) {
    let slot = limiter.acquire();
    tokio::pin!(slot);
    let every = (ctx.settings.worker.claim_idle / 3).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = &mut slot => return,
            () = tokio::time::sleep(every) => {
                if let Err(e) = ctx.queue.touch(&ctx.consumer, entry.shard, &entry.entry_id).await {
                    tracing::warn!(error = %e, "cannot refresh a waiting entry");
                }
            }
        }
    }
}

/// How the provider calls of one attempt ended: the outcome, the attempts it counts, the
/// account it came from, and where the next attempt goes: first to `pin` (an unknown
/// outcome there), or elsewhere than `avoid` (a transient failure there).
struct Called {
    outcome: Outcome,
    attempts: u32,
    account: String,
    pin: Option<String>,
    avoid: Option<String>,
}

async fn deliver(ctx: &Context, entry: &Entry, job: &Job) -> Result<(), StoreError> {
    let candidates = ctx.accounts.candidates(job);
    // A test number's code takes no send slot: it never reaches the provider.
    let choice = match job.test {
        true => None,
        false => ctx.accounts.choose(&ctx.queue, &candidates, &[]).await,
    };
    if let Some(choice) = &choice {
        wait_for_slot(ctx, entry, &choice.account.limiter).await;
    }
    let fence = Fence::new(&ctx.consumer);
    let sealed = match ctx.queue.begin(entry, job, &fence, now_ms()).await? {
        Begin::Skipped(status) => {
            transition(job, status, "", "not sent");
            return Ok(());
        }
        Begin::Finished(status) => {
            tracing::info!(%status, "already finished; acked");
            return Ok(());
        }
        Begin::Overtaken(status) => {
            tracing::info!(%status, "a later attempt already happened; this entry is acked, not sent");
            return Ok(());
        }
        Begin::Poisoned(deliveries) => {
            let why = format!("delivered {deliveries} times without finishing: dead-lettered");
            transition(job, JobStatus::Dead, "", &why);
            return Ok(());
        }
        Begin::Send { sealed, request_id } => {
            if let Some(request_id) = request_id {
                tracing::Span::current().record("request_id", tracing::field::display(request_id));
            }
            sealed
        }
    };
    // A fallback call reads out its text's code, sealed for the text's job.
    let sealed_for = job.code_of.as_ref().unwrap_or(&job.id);
    let code = match sealed
        .map(|s| ctx.sealer.open(sealed_for.as_str(), &s))
        .transpose()
    {
        Ok(code) => code,
        Err(e) => return unopenable(ctx, entry, job, &fence, e).await,
    };
    if let Some(arrived) = crate::domain::EntryId::parse(&entry.entry_id).map(|e| e.ms as i64) {
        metrics::queue_wait(ms_since(arrived));
    }
    transition(job, JobStatus::Sending, "", "");
    let called = match choice {
        // SMSQ_TEST_NUMBERS: the job ends sent, marked, and the provider never hears of it.
        _ if job.test => Called {
            outcome: Outcome::Sent {
                provider_status: "test".to_owned(),
                message_id: String::new(),
            },
            attempts: job.attempt + 1,
            account: String::new(),
            pin: None,
            avoid: None,
        },
        None => no_account(ctx, job, &candidates),
        // A fallback call is queued whatever the hour (a report, a resend); it is not made in
        // the quiet hours. An asked-for voice code was refused then already.
        Some(_)
            if job.channel == Channel::Voice && ctx.settings.code.voice.quiet_now().is_some() =>
        {
            quiet(job)
        }
        // The SMS may be out once this returns: from here on, writing the outcome is worth
        // waiting for.
        Some(choice) => {
            let through = Through {
                ctx,
                entry,
                job,
                fence: &fence,
                candidates: &candidates,
            };
            through.send(choice, code.as_ref()).await
        }
    };
    let Called {
        outcome,
        attempts,
        account,
        pin,
        avoid,
    } = called;
    let next = Job {
        account: pin,
        avoid,
        ..job.clone()
    };
    // A report that cannot name its job finds it through an index, kept as long as a report
    // may come; the others need none.
    let sid_ttl = match ctx.settings.providers.account(&account) {
        Some(a) if a.kind.report_names_the_job() => 0,
        _ => crate::provider::REPORT_WINDOW_SECS,
    };
    let settle = || {
        ctx.queue.settle(
            entry,
            &next,
            &fence,
            attempts,
            &outcome,
            &account,
            sid_ttl,
            now_ms(),
        )
    };
    let status = match persist(settle).await? {
        Settled::Status(status) => status,
        Settled::Stale => {
            // We were taken for dead and another worker took the job over: its attempt's
            // outcome is the one that counts.
            tracing::warn!(ours = %outcome.status(), "another worker owns the job now; our outcome is not recorded");
            return Ok(());
        }
    };
    if status != outcome.status() {
        // Another delivery of this entry finished it first; nothing changed here.
        tracing::info!(%status, "already finished");
        return Ok(());
    }
    if matches!(outcome, Outcome::Sent { .. }) {
        metrics::enqueue_to_accepted(ms_since(job.created_ms));
    }
    let (provider_status, error) = match &outcome {
        Outcome::Sent {
            provider_status, ..
        } => (provider_status.as_str(), ""),
        Outcome::Failed(f) | Outcome::RetryAt(_, f) | Outcome::Dead(f) | Outcome::Expired(f) => {
            (f.provider_status.as_str(), f.error.as_str())
        }
    };
    transition(job, status, provider_status, error);
    Ok(())
}

/// No account can take the job: none on its route has a template for it (it fails: a
/// person must configure one), or every one is disabled (it waits, without using an
/// attempt, until an operator enables one or the code expires).
fn no_account(ctx: &Context, job: &Job, candidates: &[&Account]) -> Called {
    let (outcome, why) = if candidates.is_empty() {
        let why = match job.channel {
            Channel::Voice => "no provider account on its route makes calls",
            Channel::Sms => "no provider account on its route has a template for it",
        }
        .to_owned();
        let failure = ProviderFailure {
            error: format!("not sent: {why}"),
            provider_status: "no_account".to_owned(),
        };
        (Outcome::Failed(failure), why)
    } else {
        let why = "every provider account on its route is disabled".to_owned();
        let failure = ProviderFailure {
            error: format!("not sent: {why}"),
            provider_status: "no_account".to_owned(),
        };
        let due = now_ms() + ctx.accounts.policy.cool_down.as_millis() as i64;
        (retry_at(job, due, failure), why)
    };
    tracing::warn!(reason = %why, "no provider account for the job");
    Called {
        outcome,
        attempts: job.attempt,
        account: String::new(),
        pin: None,
        avoid: None,
    }
}

/// A call in `code.voice_quiet_hours`: it fails, truly, without a provider call.
fn quiet(job: &Job) -> Called {
    let failure = ProviderFailure {
        error: "not called: code.voice_quiet_hours (Beijing time)".to_owned(),
        provider_status: "quiet_hours".to_owned(),
    };
    Called {
        outcome: Outcome::Failed(failure),
        attempts: job.attempt,
        account: String::new(),
        pin: None,
        avoid: None,
    }
}

/// One attempt's sends: through the chosen account, and on to the next healthy one of the
/// route when an account refuses for its own reasons (a fault, throttling), without using
/// an attempt.
struct Through<'a> {
    ctx: &'a Context,
    entry: &'a Entry,
    job: &'a Job,
    fence: &'a Fence,
    candidates: &'a [&'a Account],
}

impl Through<'_> {
    async fn send(&self, first: Choice<'_>, code: Option<&Code>) -> Called {
        let (ctx, job) = (self.ctx, self.job);
        let accounts = &ctx.accounts;
        let mut choice = first;
        let mut tried: Vec<&str> = Vec::new();
        loop {
            let account = choice.account;
            let result = call_provider(ctx, account, job, code).await;
            // Classified once: what to do now, and where the next attempt goes.
            let failure = result.as_ref().err().map(|e| (e, e.verdict()));
            let moved_on = match failure {
                // A probe's success counts towards closing; so does any success through an
                // account this worker last saw unhealthy (the only one left on a route is
                // sent through anyway, and its circuit must be able to close).
                None if choice.probe || accounts.unhealthy(account.name()) => {
                    accounts
                        .report(&ctx.queue, account.name(), CircuitOp::Ok)
                        .await;
                    None
                }
                None => None,
                Some((e, verdict)) => match verdict {
                    Verdict {
                        action: Action::AccountFault,
                        reason,
                    } => {
                        let why = format!("{} {reason}", e.status_code());
                        let open = accounts.policy.cool_down;
                        let op = CircuitOp::Fault(&why, open);
                        accounts.report(&ctx.queue, account.name(), op).await;
                        Some(why)
                    }
                    Verdict {
                        action: Action::PauseAll,
                        reason,
                    } => {
                        let why = format!("{} {reason}", e.status_code());
                        self.pause(account, &why).await;
                        Some(why)
                    }
                    Verdict {
                        action: Action::Retry,
                        reason,
                    } => {
                        let why = format!("{} {reason}", e.status_code());
                        let op = CircuitOp::Transient(&why);
                        accounts.report(&ctx.queue, account.name(), op).await;
                        None
                    }
                    _ => None,
                },
            };
            if let Some(why) = moved_on {
                tried.push(account.name());
                if let Some(next) = accounts.choose(&ctx.queue, self.candidates, &tried).await {
                    // Where it went first: the history keeps the first 40 bytes of a note.
                    let note = format!("moving to {}: {why}", next.account.name());
                    tracing::warn!(from = account.name(), to = next.account.name(), reason = %why, "account refused: moving to the next");
                    metrics::failover(account.name(), next.account.name());
                    let hop =
                        ctx.queue
                            .hop(self.entry, job, self.fence, &note, account.name(), now_ms());
                    if let Err(e) = hop.await {
                        tracing::warn!(error = %e, "cannot note the move in the job's history");
                    }
                    wait_for_slot(ctx, self.entry, &next.account.limiter).await;
                    choice = next;
                    continue;
                }
            }
            let unknown = failure.is_some_and(|(e, _)| e.is_unknown_outcome());
            let transient = failure.is_some_and(|(_, v)| v.action == Action::Retry);
            let (outcome, attempts) = outcome_of(ctx, job, result);
            // An unknown outcome is retried there once, with the same request id (the vendor
            // may recognise it); then, like any transient failure, elsewhere first.
            let pin = (unknown && job.account.is_none()).then(|| account.name().to_owned());
            let avoid = (transient && pin.is_none()).then(|| account.name().to_owned());
            return Called {
                outcome,
                attempts,
                account: account.name().to_owned(),
                pin,
                avoid,
            };
        }
    }

    /// The account is too fast: every worker pauses its sends through it, and its circuit
    /// opens for as long, so the route's other accounts take the traffic meanwhile.
    async fn pause(&self, account: &Account, why: &str) {
        let ctx = self.ctx;
        let now = now_ms();
        let pause = ctx.settings.worker.pause;
        let until = now + pause.as_millis() as i64;
        tracing::warn!(
            account = account.name(),
            code = why,
            pause_ms = until - now,
            "provider says the account is too fast: pausing every worker's sends through it"
        );
        if let Err(e) = account.limiter.pause_all(until, now, why).await {
            tracing::warn!(error = %e, "cannot share the pause; pausing this worker only");
        }
        let op = CircuitOp::Fault(why, pause);
        ctx.accounts.report(&ctx.queue, account.name(), op).await;
    }
}

/// A code this worker cannot open (another `SMSQ_SECRET` than the API's, or a changed
/// value) cannot be sent by any retry of ours: the job fails, truly, without a provider call
/// and without using an attempt.
async fn unopenable(
    ctx: &Context,
    entry: &Entry,
    job: &Job,
    fence: &Fence,
    error: OpenError,
) -> Result<(), StoreError> {
    let failure = ProviderFailure {
        error: format!("not sent: {error}"),
        provider_status: "unopenable".to_owned(),
    };
    let outcome = Outcome::Failed(failure);
    let settle = || {
        ctx.queue
            .settle(entry, job, fence, job.attempt, &outcome, "", 0, now_ms())
    };
    if let Settled::Status(status) = persist(settle).await? {
        transition(job, status, "unopenable", &format!("not sent: {error}"));
    }
    Ok(())
}

/// The provider call: a code job sends `[code, …datas]`, a message its `datas`, with the
/// account's own template; a voice code is a call that reads the code out. The job id is the
/// request id, the same on every attempt.
async fn call_provider(
    ctx: &Context,
    account: &Account,
    job: &Job,
    code: Option<&Code>,
) -> Result<Accepted, SendError> {
    let called = Instant::now();
    let result = match (job.channel, code) {
        (Channel::Voice, Some(code)) => {
            let resp_url = voice_callback(ctx, account);
            let call = VoiceCall {
                to: job.to.as_str(),
                code: code.expose(),
                play_times: ctx.settings.code.voice.play_times,
                resp_url: resp_url.as_deref(),
                user_data: job.id.as_str(),
            };
            account.sender.call(&call).await
        }
        _ => {
            let datas: Vec<String> = code
                .iter()
                .map(|c| c.expose().to_owned())
                .chain(job.datas.iter().cloned())
                .collect();
            // `candidates` only holds accounts that take the job; should one not, it is a
            // fault of that account's configuration, not a panic.
            let Some(template_id) = account.template_for(job) else {
                return Err(SendError::Rejected {
                    kind: account.sender.kind(),
                    code: "no_template".to_owned(),
                    message: "this account has no template for the job".to_owned(),
                });
            };
            let sms = TemplateSms {
                to: job.to.as_str(),
                template_id,
                datas: account.values(template_id, &datas),
                req_id: Some(job.id.as_str()),
            };
            account.sender.send(&sms).await
        }
    };
    metrics::provider_call(account.name(), called.elapsed());
    if let Err(e) = &result {
        metrics::provider_error(account.name(), &e.status_code());
    }
    result
}

/// Where the platform posts a call's result: `code.voice_callback_base` and the account's
/// path with `SMSQ_REPORTS_TOKEN`; none without both.
fn voice_callback(ctx: &Context, account: &Account) -> Option<String> {
    let base = ctx.settings.code.voice.callback_base.as_ref()?;
    let token = ctx.settings.secrets.reports_token.as_ref()?;
    Some(format!(
        "{}/v1/provider/{}/voice/{}",
        base.as_str().trim_end_matches('/'),
        account.name(),
        token.expose()
    ))
}

/// One log line and one count per status change. The span carries the job id, the attempt
/// and the masked mobile; nothing here holds a code or a credential. `sending` is logged at
/// `debug`: it comes a moment before the attempt's outcome line, which says as much, and the
/// job's history and the events stream keep it anyway (at `info` it was half of a sent job's
/// lines).
fn transition(job: &Job, status: JobStatus, provider_status: &str, error: &str) {
    let latency_ms = now_ms() - job.created_ms;
    match status {
        JobStatus::Sending => {
            tracing::debug!(%status, latency_ms, "job transition");
            return;
        }
        JobStatus::Failed | JobStatus::Dead | JobStatus::Expired | JobStatus::Retrying => {
            tracing::warn!(%status, provider_status, latency_ms, error, "job transition")
        }
        _ => tracing::info!(%status, provider_status, latency_ms, error, "job transition"),
    }
    metrics::job_status(status.as_str());
}

fn ms_since(then_ms: i64) -> Duration {
    Duration::from_millis((now_ms() - then_ms).max(0) as u64)
}

/// What the provider's answer means for this job, and the provider attempts it has used:
/// the classification of `provider::classify`, the retry policy and the code's expiry.
fn outcome_of(ctx: &Context, job: &Job, result: Result<Accepted, SendError>) -> (Outcome, u32) {
    let attempt = job.attempt + 1;
    let error = match result {
        Ok(accepted) => {
            let sent = Outcome::Sent {
                provider_status: "000000".to_owned(),
                message_id: accepted.message_id,
            };
            return (sent, attempt);
        }
        Err(error) => error,
    };
    let verdict = error.verdict();
    let provider_status = error.status_code();
    let failure = ProviderFailure {
        error: format!("{provider_status} {}: {error}", verdict.reason),
        provider_status,
    };
    let at_least = match verdict.action {
        Action::AlreadyAccepted => {
            let sent = Outcome::Sent {
                provider_status: failure.provider_status,
                message_id: String::new(),
            };
            return (sent, attempt);
        }
        // No other account could take it (or it is this job's own fault).
        Action::GiveUp | Action::AccountFault => return (Outcome::Failed(failure), attempt),
        // Paused already (`Through::pause`): the job waits for the pause's end without using
        // up an attempt (the provider did not consider it).
        Action::PauseAll => {
            let until = now_ms() + ctx.settings.worker.pause.as_millis() as i64;
            return (retry_at(job, until, failure), job.attempt);
        }
        Action::Retry => None,
        Action::Backoff { after } => Some(after),
    };
    let jitter = rand::rng().random::<f64>();
    let outcome = match retry::next(&ctx.settings.retry, attempt, at_least, jitter) {
        Next::Exhausted => Outcome::Dead(failure),
        Next::RetryAfter(delay) => retry_at(job, now_ms() + delay.as_millis() as i64, failure),
    };
    (outcome, attempt)
}

/// Never retry past the code's expiry: the user has moved on by then.
fn retry_at(job: &Job, due: i64, failure: ProviderFailure) -> Outcome {
    match job.expires_ms {
        Some(expires) if due >= expires => Outcome::Expired(failure),
        _ => Outcome::RetryAt(due, failure),
    }
}

/// Retries a status write through a short Redis outage (a restart, a failover) so a sent SMS
/// is recorded as sent. If Redis stays away, the entry stays pending and a later reclaim
/// resends with the same `reqId`, which the provider answers with 160054.
async fn persist<T, F, Fut>(mut write: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut delay = Duration::from_millis(100);
    let mut tries = 0;
    loop {
        match write().await {
            Err(e) if e.is_unavailable() && tries < 8 => {
                tries += 1;
                tracing::warn!(error = %e, "status write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}
