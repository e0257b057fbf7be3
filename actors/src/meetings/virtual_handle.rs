//! Virtual agendas at run time. `VirtualActor` owns a virtual agenda's own state (its members and
//! exclusion periods): every change of it goes through the actor. Slots and bookings belong to the
//! members, so [`VirtualHandle`] asks the members' actors: it merges their free slots, and books
//! on the member with the most free desks, trying the next one if a member's actor finds the slot
//! taken in the meantime.

use std::sync::Arc;

use actix::prelude::*;
use jiff::Timestamp;
use jiff::civil::{Date, Time};

use super::handle::{MeetingsHandle, MeetingsRegistry};
use super::model::{Meeting, MeetingType, MeetingsError, PeriodRule, Slot, SlotRequest};
use super::virtual_agenda::{
    Exclusion, SharedType, VirtualSlot, merge_slots, new_exclusion, shared_type_of, shared_types,
};
use crate::agenda::model::{AgendaKind, AgendaSettings};
use crate::ids::{AgendaId, PeriodId};
use crate::metrics::ActorMetrics;
use crate::store::{Store, StoreError};

/// What a virtual agenda is made of.
#[derive(Debug, Clone, Default)]
pub struct VirtualConfig {
    /// Member meetings agendas, in the order they were added.
    pub members: Vec<AgendaId>,
    /// Periods without slots.
    pub exclusions: Vec<Exclusion>,
}

/// From the registry: add a member (checked to be a meetings agenda).
#[derive(Message)]
#[rtype(result = "Result<VirtualConfig, MeetingsError>")]
pub(super) struct AddMember(pub(super) AgendaId);

/// From the registry: add an exclusion period.
#[derive(Message)]
#[rtype(result = "Result<Exclusion, MeetingsError>")]
pub(super) struct AddExclusion {
    pub(super) rule: PeriodRule,
    pub(super) start: Time,
    pub(super) end: Time,
}

/// From the registry: the current members and exclusions.
#[derive(Message)]
#[rtype(result = "VirtualConfig")]
pub(super) struct GetVirtualConfig;

/// The actor of one virtual agenda.
pub(super) struct VirtualActor {
    id: AgendaId,
    config: VirtualConfig,
    store: Store,
    metrics: Arc<ActorMetrics>,
}

impl VirtualActor {
    pub(super) fn new(
        id: AgendaId,
        config: VirtualConfig,
        store: Store,
        metrics: Arc<ActorMetrics>,
    ) -> Self {
        Self { id, config, store, metrics }
    }
}

impl Actor for VirtualActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        self.metrics.live_actors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.metrics.live_actors.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn not_stored(e: StoreError) -> MeetingsError {
    tracing::error!(error = %e, "virtual agenda change not stored");
    MeetingsError::Unavailable("the change could not be stored, try again".into())
}

impl Handler<AddMember> for VirtualActor {
    type Result = AtomicResponse<Self, Result<VirtualConfig, MeetingsError>>;

    fn handle(&mut self, msg: AddMember, _: &mut Context<Self>) -> Self::Result {
        let member = msg.0;
        if member == self.id {
            return AtomicResponse::new(Box::pin(fut::ready(Err(MeetingsError::Invalid(
                "a virtual agenda cannot contain itself".into(),
            )))));
        }
        if self.config.members.contains(&member) {
            return AtomicResponse::new(Box::pin(fut::ready(Err(MeetingsError::Invalid(
                format!("agenda {member} is a member already"),
            )))));
        }
        let (store, id) = (self.store.clone(), self.id);
        let write = async move { store.add_virtual_member(id, member, Timestamp::now()).await };
        AtomicResponse::new(Box::pin(write.into_actor(self).map(move |r, act, _| {
            r.map_err(not_stored)?;
            act.config.members.push(member);
            Ok(act.config.clone())
        })))
    }
}

impl Handler<AddExclusion> for VirtualActor {
    type Result = AtomicResponse<Self, Result<Exclusion, MeetingsError>>;

    fn handle(&mut self, msg: AddExclusion, _: &mut Context<Self>) -> Self::Result {
        let exclusion = match new_exclusion(msg.rule, msg.start, msg.end, PeriodId::new()) {
            Ok(e) => e,
            Err(e) => return AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        };
        let (store, id, e) = (self.store.clone(), self.id, exclusion.clone());
        let write = async move { store.create_exclusion(id, &e, Timestamp::now()).await };
        AtomicResponse::new(Box::pin(write.into_actor(self).map(move |r, act, _| {
            r.map_err(not_stored)?;
            act.config.exclusions.push(exclusion.clone());
            Ok(exclusion)
        })))
    }
}

impl Handler<GetVirtualConfig> for VirtualActor {
    type Result = MessageResult<GetVirtualConfig>;

    fn handle(&mut self, _: GetVirtualConfig, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.config.clone())
    }
}

/// A live virtual agenda: its settings, its actor, and the registry that reaches its members.
#[derive(Clone)]
pub struct VirtualHandle {
    pub(super) addr: Addr<VirtualActor>,
    pub(super) settings: Arc<AgendaSettings>,
    pub(super) registry: MeetingsRegistry,
}

impl std::fmt::Debug for VirtualHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualHandle").field("agenda", &self.settings.id).finish()
    }
}

fn unavailable(e: MailboxError) -> MeetingsError {
    MeetingsError::Unavailable(format!("virtual agenda actor: {e}"))
}

impl VirtualHandle {
    /// The agenda's settings.
    pub fn settings(&self) -> &AgendaSettings {
        &self.settings
    }

    /// Members and exclusion periods.
    pub async fn config(&self) -> Result<VirtualConfig, MeetingsError> {
        self.addr.send(GetVirtualConfig).await.map_err(unavailable)
    }

    /// Adds a meetings agenda as a member.
    pub async fn add_member(&self, member: AgendaId) -> Result<VirtualConfig, MeetingsError> {
        // Refuses what is not a meetings agenda (a virtual one included).
        self.registry.get(member).await?;
        self.addr.send(AddMember(member)).await.map_err(unavailable)?
    }

    /// Adds a period without slots.
    pub async fn add_exclusion(
        &self,
        rule: PeriodRule,
        start: Time,
        end: Time,
    ) -> Result<Exclusion, MeetingsError> {
        self.addr.send(AddExclusion { rule, start, end }).await.map_err(unavailable)?
    }

    async fn members(&self) -> Result<(VirtualConfig, Vec<MeetingsHandle>), MeetingsError> {
        let config = self.config().await?;
        let mut handles = Vec::with_capacity(config.members.len());
        for m in &config.members {
            handles.push(self.registry.get(*m).await?);
        }
        Ok((config, handles))
    }

    /// The meeting types every member shares (same slug and duration).
    pub async fn shared_types(&self) -> Result<Vec<SharedType>, MeetingsError> {
        let (_, members) = self.members().await?;
        let mut types: Vec<(AgendaId, Vec<MeetingType>)> = Vec::with_capacity(members.len());
        for m in &members {
            types.push((m.settings().id, m.config().await?.types));
        }
        Ok(shared_types(&types))
    }

    /// The member agendas whose slot changes concern this agenda's subscribers.
    pub async fn member_ids(&self) -> Result<Vec<AgendaId>, MeetingsError> {
        Ok(self.config().await?.members)
    }

    async fn virtual_slots(
        &self,
        meeting_type: crate::ids::MeetingTypeId,
        from: Date,
        to: Date,
        lock_code: Option<String>,
        ignore_delays: bool,
    ) -> Result<Vec<VirtualSlot>, MeetingsError> {
        let (config, members) = self.members().await?;
        let mut types: Vec<(AgendaId, Vec<MeetingType>)> = Vec::with_capacity(members.len());
        for m in &members {
            types.push((m.settings().id, m.config().await?.types));
        }
        let shared = shared_types(&types);
        let shared =
            shared_type_of(&shared, meeting_type).ok_or(MeetingsError::MeetingTypeNotFound)?;
        // Each member computes its own slots on its own actor; they run side by side.
        let queries =
            shared.members.iter().zip(&members).map(|((agenda, mt), handle)| {
                let code = lock_code.clone();
                async move {
                    handle.slots(*mt, from, to, code, ignore_delays).await.map(|s| (*agenda, s))
                }
            });
        let per_member: Vec<(AgendaId, Vec<Slot>)> =
            futures_util::future::try_join_all(queries).await?;
        let mut merged = merge_slots(per_member, &config.exclusions, &crate::time::paris());
        if !ignore_delays {
            // The virtual agenda's own delays apply on top of its members'.
            let window = super::model::MeetingsAgenda::new(
                self.settings.id,
                crate::time::paris(),
                self.settings.meetings.clone(),
            )
            .booking_window(Timestamp::now());
            merged.retain(|s| s.starts_at >= window.0 && s.starts_at < window.1);
        }
        Ok(merged)
    }

    /// The free slots of a shared meeting type (given by any member's type id).
    pub async fn slots(
        &self,
        meeting_type: crate::ids::MeetingTypeId,
        from: Date,
        to: Date,
        lock_code: Option<String>,
        ignore_delays: bool,
    ) -> Result<Vec<Slot>, MeetingsError> {
        let slots = self.virtual_slots(meeting_type, from, to, lock_code, ignore_delays).await?;
        Ok(slots.iter().map(VirtualSlot::to_slot).collect())
    }

    /// Books (or holds) a slot on one member: the member holding the caller's lock code for it
    /// first, then the one with the most free desks.
    async fn reserve(&self, request: SlotRequest, hold: bool) -> Result<Meeting, MeetingsError> {
        let tz = crate::time::paris();
        let day = request.starts_at.to_zoned(tz).date();
        let slots = self
            .virtual_slots(
                request.meeting_type_id,
                day,
                day,
                request.lock_code.clone(),
                request.ignore_delays,
            )
            .await?;
        let shown = request.starts_at.to_string();
        let slot = slots
            .iter()
            .find(|s| s.starts_at == request.starts_at)
            .ok_or_else(|| MeetingsError::SlotTaken(shown.clone()))?;
        let shared = self.shared_types().await?;
        let shared = shared_type_of(&shared, request.meeting_type_id)
            .ok_or(MeetingsError::MeetingTypeNotFound)?;
        let mut order = slot.booking_order();
        if let Some(code) = &request.lock_code {
            for (i, agenda) in order.clone().iter().enumerate() {
                let member = self.registry.get(*agenda).await?;
                if member.holds(code, request.starts_at).await? {
                    order.remove(i);
                    order.insert(0, *agenda);
                    break;
                }
            }
        }
        for agenda in order {
            let Some((_, mt)) = shared.members.iter().find(|(a, _)| *a == agenda) else {
                continue;
            };
            let member = self.registry.get(agenda).await?;
            let req = SlotRequest { meeting_type_id: *mt, ..request.clone() };
            let result = if hold { member.hold(req).await } else { member.book(req).await };
            match result {
                // Taken on this member since the slots were read: the next member may have it.
                Err(MeetingsError::SlotTaken(_)) => continue,
                other => return other,
            }
        }
        Err(MeetingsError::SlotTaken(shown))
    }

    /// Books a slot on one member.
    pub async fn book(&self, request: SlotRequest) -> Result<Meeting, MeetingsError> {
        self.reserve(request, false).await
    }

    /// Holds a slot on one member.
    pub async fn hold(&self, request: SlotRequest) -> Result<Meeting, MeetingsError> {
        self.reserve(request, true).await
    }
}

/// A meetings agenda or a virtual one: what slot queries and bookings need.
#[derive(Debug, Clone)]
pub enum SlotAgenda {
    /// A meetings agenda.
    Meetings(MeetingsHandle),
    /// A virtual agenda.
    Virtual(VirtualHandle),
}

impl SlotAgenda {
    /// The agenda's settings.
    pub fn settings(&self) -> &AgendaSettings {
        match self {
            SlotAgenda::Meetings(h) => h.settings(),
            SlotAgenda::Virtual(v) => v.settings(),
        }
    }

    /// The free slots of a meeting type on the local days `from` to `to`.
    pub async fn slots(
        &self,
        meeting_type: crate::ids::MeetingTypeId,
        from: Date,
        to: Date,
        lock_code: Option<String>,
        ignore_delays: bool,
    ) -> Result<Vec<Slot>, MeetingsError> {
        match self {
            SlotAgenda::Meetings(h) => {
                h.slots(meeting_type, from, to, lock_code, ignore_delays).await
            }
            SlotAgenda::Virtual(v) => {
                v.slots(meeting_type, from, to, lock_code, ignore_delays).await
            }
        }
    }

    /// Books a slot.
    pub async fn book(&self, request: SlotRequest) -> Result<Meeting, MeetingsError> {
        match self {
            SlotAgenda::Meetings(h) => h.book(request).await,
            SlotAgenda::Virtual(v) => v.book(request).await,
        }
    }

    /// Holds a slot.
    pub async fn hold(&self, request: SlotRequest) -> Result<Meeting, MeetingsError> {
        match self {
            SlotAgenda::Meetings(h) => h.hold(request).await,
            SlotAgenda::Virtual(v) => v.hold(request).await,
        }
    }

    /// The agendas whose slot changes alter this agenda's slots.
    pub async fn slot_sources(&self) -> Result<Vec<AgendaId>, MeetingsError> {
        match self {
            SlotAgenda::Meetings(h) => Ok(vec![h.settings().id]),
            SlotAgenda::Virtual(v) => {
                let mut ids = v.member_ids().await?;
                ids.push(v.settings().id);
                Ok(ids)
            }
        }
    }

    /// True for a virtual agenda.
    pub fn is_virtual(&self) -> bool {
        matches!(self, SlotAgenda::Virtual(_))
    }
}

/// Loads a virtual agenda's settings and configuration (for the registry).
pub(super) async fn load_virtual(
    store: &Store,
    id: AgendaId,
) -> Result<(AgendaSettings, VirtualConfig), MeetingsError> {
    let settings = store
        .agenda(id)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "virtual agenda load");
            MeetingsError::Unavailable("storage unavailable".into())
        })?
        .ok_or(MeetingsError::AgendaNotFound)?;
    if settings.kind != AgendaKind::Virtual {
        return Err(MeetingsError::Invalid(format!("{} is not a virtual agenda", settings.slug)));
    }
    let (members, exclusions) = store.virtual_config(id).await.map_err(|e| {
        tracing::error!(error = %e, "virtual agenda load");
        MeetingsError::Unavailable("storage unavailable".into())
    })?;
    Ok((settings, VirtualConfig { members, exclusions }))
}
