//! The SMS provider boundary: the Ronglian TemplateSMS client, the one table that classifies
//! its answers. The simulator tests and the demo talk to lives in `dev::fake`.

mod classify;
mod report;
mod ronglian;

pub use classify::{Action, Verdict, classify};
pub use report::{Report, ReportError, StatusReport};
pub use ronglian::{
    Accepted, Client, ClientError, SendError, SignedRequest, TemplateSms, TransportKind,
    authorization, install_crypto, sign, signature, timestamp,
};

/// The REST API version every SDK hard-codes; the server answers 111110 to anything else.
pub const API_VERSION: &str = "2013-12-26";
