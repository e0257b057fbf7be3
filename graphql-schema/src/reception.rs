//! Reception over GraphQL: agents choose the phone line they answer, and see calls ringing on
//! it with the caller's accounts and the demands of theirs the agent may see.

use std::sync::Arc;

use actors::Services;
use actors::access::Action;
use actors::reception::IncomingCall;
use async_graphql::{Context, ID, Object, SimpleObject, Subscription};
use futures_util::stream::{Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;

use crate::context::Caller;
use crate::demands::{Demand, demand_for};
use crate::error::GqlResultExt;
use crate::scalars::DateTime;
use crate::subscription::{Open, until_session_ends};

/// An account whose phone is the caller's number.
#[derive(SimpleObject)]
pub struct CallerAccount {
    /// The account.
    pub id: ID,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Email.
    pub email: String,
    /// Their latest demands the agent may see (at most ten).
    pub demands: Vec<Demand>,
}

/// A call ringing on the agent's line.
#[derive(SimpleObject)]
pub struct Call {
    /// The caller's number (E.164 when readable).
    pub caller: String,
    /// The line.
    pub line: String,
    /// When it rang.
    pub at: DateTime,
    /// Accounts of that number.
    pub accounts: Vec<CallerAccount>,
}

async fn call_view(services: &Services, caller: &Caller, call: &IncomingCall) -> Call {
    let mut accounts = Vec::new();
    for id in &call.accounts {
        let Ok(Some(account)) = services.store.account(*id).await else { continue };
        let demands = services
            .demands
            .of_account(*id, 10)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|view| demand_for(caller, view).ok())
            .collect();
        accounts.push(CallerAccount {
            id: ID(id.to_string()),
            first_name: account.first_name,
            last_name: account.last_name,
            email: account.email,
            demands,
        });
    }
    Call { caller: call.caller.clone(), line: call.line.clone(), at: DateTime(call.at), accounts }
}

/// Mutations of reception.
#[derive(Default)]
pub struct ReceptionMutation;

#[Object]
impl ReceptionMutation {
    /// The phone line the caller (an agent) answers; calls ringing on it are pushed to
    /// `incomingCalls`. Null stops it.
    async fn set_reception_line(
        &self,
        ctx: &Context<'_>,
        line: Option<String>,
    ) -> async_graphql::Result<Option<String>> {
        let caller = ctx.data::<Caller>()?;
        caller.may(Action::AnswerCalls)?;
        let me = caller.account()?;
        let services = ctx.data::<Services>()?;
        services.reception.set_line(me, line.as_deref()).await.gql()
    }
}

/// Subscriptions of reception.
#[derive(Default)]
pub struct ReceptionSubscription;

#[Subscription]
impl ReceptionSubscription {
    /// Calls ringing on the caller's line (see `setReceptionLine`; a new line applies at once),
    /// with the caller's accounts and their demands. Ends with the session.
    async fn incoming_calls(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = Call> + use<>> {
        let caller = ctx.data::<Caller>()?.clone();
        caller.may(Action::AnswerCalls)?;
        let me = caller.account()?;
        let services = ctx.data::<Services>()?.clone();
        let rx = services.reception.subscribe();
        let open = Arc::new(Open::new(services.metrics.clone(), caller.session.as_ref()));
        let session = caller.session.clone();
        let calls = BroadcastStream::new(rx).filter_map(move |msg| {
            let services = services.clone();
            let caller = caller.clone();
            let _open = open.clone();
            async move {
                let call = msg.ok()?;
                // The agent's line as it is now: changing it needs no new subscription.
                let line = services.reception.line_of(me).await.ok()??;
                if call.line != line {
                    return None;
                }
                Some(call_view(&services, &caller, &call).await)
            }
        });
        Ok(until_session_ends(calls, session))
    }
}
