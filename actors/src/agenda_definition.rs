//! Agendas as definitions, for application bundles: an agenda's settings and, for a meetings
//! agenda, its meeting types, desks and opening periods; for a virtual agenda, its members by
//! slug. Bookings, events and exceptions are life, not definition, and stay where they are;
//! so do resources (rooms of one town are not another's).
//!
//! An agenda is created through the same registries and actors as by hand, so the same rules
//! apply; an agenda that exists is never replaced by an import (it holds bookings).

use std::collections::HashMap;

use jiff::civil::Time;
use serde::{Deserialize, Serialize};

use crate::agenda::AgendaRegistry;
use crate::agenda::model::{AgendaKind, AgendaSettings, FillNotifications, NewAgenda};
use crate::agenda::rules::EventRules;
use crate::duplicate::DuplicateError;
use crate::ids::AgendaId;
use crate::meetings::MeetingsRegistry;
use crate::meetings::model::{MeetingsRules, NewMeetingType, NewPeriods, PeriodRule};

/// An agenda as a bundle carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgendaDefinition {
    /// Unique short name: how bundles and forms name it.
    pub slug: String,
    /// Human name.
    pub label: String,
    /// Events, meetings or virtual.
    pub kind: AgendaKind,
    /// Fill-level notifications.
    #[serde(default)]
    pub fill_notifications: FillNotifications,
    /// Automatic waiting-list promotion.
    #[serde(default)]
    pub auto_promote_waiting_list: bool,
    /// Services whose agents manage it.
    #[serde(default)]
    pub services: Vec<String>,
    /// Rules of a meetings or virtual agenda.
    #[serde(default)]
    pub meetings: Option<MeetingsRules>,
    /// Rules of an events agenda.
    #[serde(default)]
    pub events: Option<EventRules>,
    /// Category slug.
    #[serde(default)]
    pub category: Option<String>,
    /// Meeting types of a meetings agenda.
    #[serde(default)]
    pub meeting_types: Vec<MeetingTypeDefinition>,
    /// Desks of a meetings agenda, with their opening periods.
    #[serde(default)]
    pub desks: Vec<DeskDefinition>,
    /// Members of a virtual agenda, by slug.
    #[serde(default)]
    pub members: Vec<String>,
}

/// A meeting type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingTypeDefinition {
    /// Slug.
    pub slug: String,
    /// Label.
    pub label: String,
    /// Length.
    pub duration_minutes: u32,
}

/// A desk and when it is open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskDefinition {
    /// Label.
    pub label: String,
    /// Opening periods.
    #[serde(default)]
    pub periods: Vec<PeriodDefinition>,
}

/// An opening period of a desk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodDefinition {
    /// Which days.
    pub rule: PeriodRule,
    /// Opens.
    pub start: Time,
    /// Closes.
    pub end: Time,
}

impl AgendaDefinition {
    /// True for agendas whose members must exist first.
    pub fn is_virtual(&self) -> bool {
        self.kind == AgendaKind::Virtual
    }
}

/// An agenda as a definition.
pub async fn export_agenda(
    agendas: &AgendaRegistry,
    meetings: &MeetingsRegistry,
    settings: &AgendaSettings,
) -> Result<AgendaDefinition, DuplicateError> {
    let mut def = AgendaDefinition {
        slug: settings.slug.clone(),
        label: settings.label.clone(),
        kind: settings.kind,
        fill_notifications: settings.fill_notifications.clone(),
        auto_promote_waiting_list: settings.auto_promote_waiting_list,
        services: settings.services.clone(),
        meetings: matches!(settings.kind, AgendaKind::Meetings | AgendaKind::Virtual)
            .then(|| settings.meetings.clone()),
        events: (settings.kind == AgendaKind::Events).then(|| settings.events.clone()),
        category: settings.category.clone(),
        meeting_types: Vec::new(),
        desks: Vec::new(),
        members: Vec::new(),
    };
    match settings.kind {
        AgendaKind::Events => {}
        AgendaKind::Meetings => {
            let config = meetings.get(settings.id).await?.config().await?;
            def.meeting_types = config
                .types
                .iter()
                .map(|t| MeetingTypeDefinition {
                    slug: t.slug.clone(),
                    label: t.label.clone(),
                    duration_minutes: t.duration_minutes,
                })
                .collect();
            def.desks = config
                .desks
                .iter()
                .map(|d| DeskDefinition {
                    label: d.label.clone(),
                    periods: config
                        .periods
                        .iter()
                        .filter(|p| p.desk_id == d.id)
                        .map(|p| PeriodDefinition {
                            rule: p.rule.clone(),
                            start: p.start,
                            end: p.end,
                        })
                        .collect(),
                })
                .collect();
        }
        AgendaKind::Virtual => {
            let config = meetings.virtual_agenda(settings.id).await?.config().await?;
            for member in config.members {
                def.members.push(agendas.settings(member).await?.slug);
            }
        }
    }
    Ok(def)
}

/// Creates an agenda from its definition; `members` gives the ids of agendas by slug (for a
/// virtual agenda's members, created before it).
pub async fn import_agenda(
    agendas: &AgendaRegistry,
    meetings: &MeetingsRegistry,
    def: &AgendaDefinition,
    members: &HashMap<String, AgendaId>,
) -> Result<AgendaSettings, DuplicateError> {
    let created = agendas
        .create_agenda(NewAgenda {
            slug: def.slug.clone(),
            label: def.label.clone(),
            kind: def.kind,
            fill_notifications: def.fill_notifications.clone(),
            auto_promote_waiting_list: def.auto_promote_waiting_list,
            services: def.services.clone(),
            meetings: def.meetings.clone(),
            events: def.events.clone(),
            category: def.category.clone(),
            resources: Vec::new(),
        })
        .await?;
    match def.kind {
        AgendaKind::Events => {}
        AgendaKind::Meetings => {
            let target = meetings.get(created.id).await?;
            for t in &def.meeting_types {
                target
                    .add_meeting_type(NewMeetingType {
                        label: t.label.clone(),
                        slug: Some(t.slug.clone()),
                        duration_minutes: i64::from(t.duration_minutes),
                    })
                    .await?;
            }
            for d in &def.desks {
                let desk = target.add_desk(d.label.clone()).await?.id;
                for p in &d.periods {
                    target
                        .add_periods(NewPeriods {
                            desk_ids: vec![desk],
                            rule: p.rule.clone(),
                            start: p.start,
                            end: p.end,
                        })
                        .await?;
                }
            }
        }
        AgendaKind::Virtual => {
            let target = meetings.virtual_agenda(created.id).await?;
            for slug in &def.members {
                if let Some(member) = members.get(slug) {
                    target.add_member(*member).await?;
                }
            }
        }
    }
    Ok(created)
}
