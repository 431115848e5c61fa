//! Why a send did not go through, for every kind; [`SendError::verdict`] says what to do.

use super::{Action, Kind, Verdict, classify};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// Could not connect (refused, DNS, TLS handshake): the request never left.
    Connect,
    /// No complete answer within `provider.timeout_ms`.
    Timeout,
    /// The connection broke after the request was written, or the answer was cut short.
    Broken,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// The vendor's own error code: Ronglian's `statusCode`, Tencent's `Error.Code` or
    /// `SendStatusSet[0].Code`, Aliyun's `Code` (in a 200 answer or a gateway error).
    #[error("provider error {code}: {message}")]
    Rejected {
        kind: Kind,
        code: String,
        message: String,
    },
    /// An HTTP status the vendor does not explain with a code of its own.
    #[error("provider answered HTTP {status}")]
    Http { status: u16 },
    /// What the Ronglian SDKs call 172001. `reached` says whether the provider may have
    /// received the request, in which case a retry could send the SMS twice unless the
    /// vendor deduplicates it (only Ronglian's `reqId` does).
    #[error("network error ({kind:?}, request may have reached the provider: {reached}): {detail}")]
    Transport {
        kind: TransportKind,
        reached: bool,
        detail: String,
    },
    /// A 200 answer that is not the documented JSON (Ronglian SDK code 172003).
    #[error("unreadable provider answer: {0}")]
    Malformed(String),
}

impl SendError {
    /// The one place the worker learns whether to retry, back off, fail over or give up.
    pub fn verdict(&self) -> Verdict {
        match self {
            SendError::Rejected { kind, code, .. } => classify(*kind, code),
            SendError::Http { status } if *status >= 500 || *status == 429 => Verdict {
                action: Action::Retry,
                reason: "provider HTTP error",
            },
            SendError::Http { status } if (300..400).contains(status) => Verdict {
                action: Action::AccountFault,
                reason: "provider answered a redirect, not followed (check the base_url)",
            },
            SendError::Http { .. } => Verdict {
                action: Action::AccountFault,
                reason: "unexpected HTTP status from provider",
            },
            SendError::Transport { .. } => Verdict {
                action: Action::Retry,
                reason: "network error (172001)",
            },
            // The answer might have been a success we could not read.
            SendError::Malformed(_) => Verdict {
                action: Action::Retry,
                reason: "unreadable provider answer (172003)",
            },
        }
    }

    /// Whether the provider may have taken the request although we do not know it did: a
    /// timeout or a broken connection after the request left, or an unreadable answer. Such
    /// an attempt is retried through the same account first, with the same request id.
    pub fn is_unknown_outcome(&self) -> bool {
        match self {
            SendError::Transport { reached, .. } => *reached,
            SendError::Malformed(_) => true,
            _ => false,
        }
    }

    /// The provider's status code, or the SDK-style stand-in for client-side failures.
    pub fn status_code(&self) -> String {
        match self {
            SendError::Rejected { code, .. } => code.clone(),
            SendError::Http { status } => status.to_string(),
            SendError::Transport { .. } => "172001".to_owned(),
            SendError::Malformed(_) => "172003".to_owned(),
        }
    }
}

/// reqwest errors may carry the URL, whose query can hold a signature: strip it first.
pub(crate) fn transport(e: reqwest::Error) -> SendError {
    // A connect timeout is both: it is a connect failure, nothing was written.
    let kind = if e.is_connect() {
        TransportKind::Connect
    } else if e.is_timeout() {
        TransportKind::Timeout
    } else {
        TransportKind::Broken
    };
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        detail.push_str(": ");
        detail.push_str(&inner.to_string());
        source = inner.source();
    }
    SendError::Transport {
        kind,
        reached: kind != TransportKind::Connect,
        detail,
    }
}
