//! Dashboard sessions that logged out, remembered for as long as their cookie could still be
//! presented.

use super::Records;
use crate::store::StoreError;

impl Records {
    /// Remembers that the dashboard session `session_id` logged out, for as long as its
    /// cookie could still be presented.
    pub async fn revoke_session(&self, session_id: &str, for_ms: u64) -> Result<(), StoreError> {
        let _: () = redis::cmd("SET")
            .arg(self.fleet().revoked_session(session_id))
            .arg(1)
            .arg("PX")
            .arg(for_ms.max(1))
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    pub async fn session_revoked(&self, session_id: &str) -> Result<bool, StoreError> {
        let n: u64 = redis::cmd("EXISTS")
            .arg(self.fleet().revoked_session(session_id))
            .query_async(&mut self.conn())
            .await?;
        Ok(n > 0)
    }
}
