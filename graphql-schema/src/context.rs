//! What a request carries: who is calling, through which session.

use actors::access::{AccessError, Action, Principal, authorize};
use actors::ids::AccountId;
use actors::session::SessionHandle;

use crate::error::GqlResultExt;

/// The caller of one HTTP request or one websocket connection.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// Their live session, if signed in.
    pub session: Option<SessionHandle>,
    /// Their bearer token, kept only to log out.
    pub token: Option<String>,
    /// Their network address, for per-client rate limits.
    pub client: Option<String>,
}

impl Caller {
    /// Nobody signed in.
    pub fn anonymous() -> Self {
        Self { principal: Principal::Anonymous, session: None, token: None, client: None }
    }

    /// Checks an action against the single policy.
    pub fn may(&self, action: Action<'_>) -> async_graphql::Result<()> {
        authorize(&self.principal, action).gql()
    }

    /// The signed-in account, or `UNAUTHENTICATED`.
    pub fn account(&self) -> async_graphql::Result<AccountId> {
        self.principal.account_id().ok_or(AccessError::Unauthenticated).gql()
    }
}
