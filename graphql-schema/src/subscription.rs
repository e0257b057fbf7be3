//! Subscriptions. Each starts with a snapshot, then pushes changes newer than what it sent
//! (by the event's version), re-reading a snapshot if it fell behind; it ends when the caller's
//! session ends.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use actors::Services;
use actors::access::Action;
use actors::agenda::AgendaHandle;
use actors::ids::{AgendaId, EventId};
use actors::metrics::ActorMetrics;
use actors::session::{SessionHandle, SubscriptionGuard};
use async_graphql::{Context, ID, Subscription};
use futures_util::stream::{self, Stream, StreamExt};
use jiff::Timestamp;
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::wrappers::BroadcastStream;

use crate::context::Caller;
use crate::error::GqlResultExt;
use crate::query::parse_id;
use crate::types::{Booking, BookingUpdate, FillLevel};

/// Counts an open subscription for `/metrics` and for the caller's session while it lives.
pub(crate) struct Open {
    metrics: Arc<ActorMetrics>,
    _session: Option<SubscriptionGuard>,
}

impl Open {
    pub(crate) fn new(metrics: Arc<ActorMetrics>, session: Option<&SessionHandle>) -> Self {
        metrics.open_subscriptions.fetch_add(1, Ordering::Relaxed);
        Self { metrics, _session: session.map(SessionHandle::track_subscription) }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.metrics.open_subscriptions.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Ends `stream` when the session ends (logout or expiry).
pub(crate) fn until_session_ends<S: Stream + Send + 'static>(
    stream: S,
    session: Option<SessionHandle>,
) -> impl Stream<Item = S::Item> {
    // Anonymous subscribers have no session to wait for: nothing to allocate for them.
    let ended = match session {
        Some(s) => futures_util::future::Either::Left(Box::pin(async move { s.closed().await })),
        None => futures_util::future::Either::Right(std::future::pending()),
    };
    stream.take_until(ended)
}

struct FillState {
    rx: tokio::sync::broadcast::Receiver<actors::agenda::model::FillLevel>,
    handle: AgendaHandle,
    event: EventId,
    last_seq: Option<u64>,
    first: Option<actors::agenda::model::FillLevel>,
    _open: Open,
}

/// Subscriptions about agendas.
#[derive(Default)]
pub struct AgendaSubscription;

#[Subscription]
impl AgendaSubscription {
    /// The fill level of an event: now, then at every change. Open to anyone who may see the
    /// event. `seq` only grows; a client that sees it jump knows it missed nothing it needs,
    /// since each update carries the whole level.
    async fn event_fill_level(
        &self,
        ctx: &Context<'_>,
        event_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = FillLevel> + use<>> {
        let services = ctx.data::<Services>()?;
        let caller = ctx.data::<Caller>()?;
        let event: EventId = parse_id(&event_id, "event")?;
        let handle = services.agendas.agenda_of_event(event).await.gql()?;
        // Subscribe before reading the snapshot, so that no change falls between the two.
        let rx = services.live.subscribe_fill_level(event);
        let view = handle.event(event, false).await.gql()?;
        caller.may(Action::SeeEvent {
            agenda_services: &handle.settings().services,
            published: view.is_published(Timestamp::now()),
        })?;
        let state = FillState {
            rx,
            handle,
            event,
            last_seq: None,
            first: Some(view.fill),
            _open: Open::new(services.metrics.clone(), caller.session.as_ref()),
        };
        let levels = stream::unfold(state, |mut st| async move {
            if let Some(first) = st.first.take() {
                st.last_seq = Some(first.seq);
                return Some((first, st));
            }
            loop {
                let next = match st.rx.recv().await {
                    Ok(level) => level,
                    // Boxed: the rare re-read would otherwise widen every idle subscription.
                    Err(RecvError::Lagged(_)) => {
                        match Box::pin(st.handle.event(st.event, false)).await {
                            Ok(view) => view.fill,
                            Err(_) => return None,
                        }
                    }
                    Err(RecvError::Closed) => return None,
                };
                if st.last_seq.is_none_or(|seen| next.seq > seen) {
                    st.last_seq = Some(next.seq);
                    return Some((next, st));
                }
            }
        });
        Ok(until_session_ends(levels.map(FillLevel::from), caller.session.clone()))
    }

    /// Every booking change of an agenda (agents of the agenda and administrators).
    async fn agenda_bookings(
        &self,
        ctx: &Context<'_>,
        agenda_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = BookingUpdate> + use<>> {
        let services = ctx.data::<Services>()?;
        let caller = ctx.data::<Caller>()?;
        caller.account()?;
        let agenda: AgendaId = parse_id(&agenda_id, "agenda")?;
        let handle = services.agendas.get(agenda).await.gql()?;
        caller.may(Action::SeeBookings { agenda_services: &handle.settings().services })?;
        let open = Open::new(services.metrics.clone(), caller.session.as_ref());
        // A lagging agent skips to the newest changes; the client re-reads the listing when
        // `seq` jumps.
        let changes = BroadcastStream::new(services.live.subscribe_bookings(agenda))
            .filter_map(|change| std::future::ready(change.ok()))
            .map(move |c| {
                let _counted = &open;
                BookingUpdate { booking: Booking::from(&c.booking), seq: c.seq.to_string() }
            });
        Ok(until_session_ends(changes, caller.session.clone()))
    }
}
